// Renders the HTML pages in views/: {{name}} is HTML-escaped, {{{name}}} is inserted as is (pre-rendered fragments only).
import fs from 'node:fs';

const VIEWS = new URL('../../views/', import.meta.url);
const cache = new Map<string, string>();

function template(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = fs.readFileSync(new URL(name, VIEWS), 'utf8');
    cache.set(name, text);
  }
  return text;
}

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fill(text: string, vars: Record<string, unknown>): string {
  return text
    .replace(/\{\{\{(\w+)\}\}\}/g, (_, k: string) => String(vars[k] ?? ''))
    .replace(/\{\{(\w+)\}\}/g, (_, k: string) => escapeHtml(vars[k]));
}

/** A piece of a page (e.g. the login error block), to insert with {{{name}}}. */
export function renderFragment(name: string, vars: Record<string, unknown>): string {
  return fill(template(`${name}.html`), vars);
}

/** A page: the named body template inside views/layout.html. */
export function renderPage(name: string, title: string, vars: Record<string, unknown>): string {
  return fill(template('layout.html'), { title, body: fill(template(`${name}.html`), vars) });
}

export function readAsset(name: string): string | undefined {
  if (!/^[a-z0-9-]+\.css$/.test(name)) return undefined;
  try {
    return template(name);
  } catch {
    return undefined;
  }
}
