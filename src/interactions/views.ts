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

// One pass over the template only: an inserted value (user input, a pre-rendered fragment) is never scanned again,
// so `{{…}}` typed into a form field comes back as typed instead of expanding another variable (issue 10, item 8).
const PLACEHOLDER = /\{\{\{(\w+)\}\}\}|\{\{(\w+)\}\}/g;

function fill(text: string, vars: Record<string, unknown>): string {
  return text.replace(PLACEHOLDER, (_, raw: string | undefined, escaped: string | undefined) =>
    raw !== undefined ? String(vars[raw] ?? '') : escapeHtml(vars[escaped!]),
  );
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
