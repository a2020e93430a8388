// Renders the HTML pages in views/: {{name}} is HTML-escaped, {{{name}}} is inserted as is (pre-rendered fragments
// only); {{t.key}} / {{{t.key}}} is the text `key` of the page's language (src/interactions/locales/).
import fs from 'node:fs';
import type { Context } from 'koa';
import type { Config } from '../config/env.ts';
import { setPageSecurityHeaders } from '../http/headers.ts';
import type { Messages } from './locales/en.ts';

const VIEWS = new URL('../../views/', import.meta.url);
const cache = new Map<string, string>();

/** What the pages say about who runs this server: IDMS_DISPLAY_NAME and IDMS_HOME_URL. */
export type PageSite = Pick<Config, 'displayName' | 'homeUrl'>;

/** Everything a page needs besides its own values: the texts of its language, the operator, its title. */
export type PageFrame = { t: Messages; site: PageSite; title: string };

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
const PLACEHOLDER = /\{\{\{([\w.]+)\}\}\}|\{\{([\w.]+)\}\}/g;
const SLOT = /\{(\w+)\}/;

/** The text at `path` ("login.heading") of a locale, or undefined (a theme's typo renders as the key itself). */
function textAt(t: Messages, path: string): string | undefined {
  let node: unknown = t;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === 'string' ? node : undefined;
}

// A text of a locale file with its {slots} filled from the page's values, escaped. The text itself is ours: with
// `trusted` (a {{{t.…}}} placeholder) its markup is kept. One pass over the text; values are not scanned.
function formatHtml(text: string, vars: Record<string, unknown>, trusted: boolean): string {
  return text
    .split(SLOT)
    .map((part, i) => (i % 2 === 1 ? escapeHtml(Object.hasOwn(vars, part) ? vars[part] : `{${part}}`) : trusted ? part : escapeHtml(part)))
    .join('');
}

function fill(text: string, vars: Record<string, unknown>, t: Messages): string {
  return text.replace(PLACEHOLDER, (_, raw: string | undefined, escaped: string | undefined) => {
    const name = (raw ?? escaped)!;
    if (name.startsWith('t.')) {
      const message = textAt(t, name.slice(2));
      return message === undefined ? escapeHtml(name) : formatHtml(message, vars, raw !== undefined);
    }
    if (!Object.hasOwn(vars, name)) return '';
    return raw !== undefined ? String(vars[name] ?? '') : escapeHtml(vars[name]);
  });
}

/** A piece of a page (e.g. the login error block), to insert with {{{name}}}. */
export function renderFragment(name: string, t: Messages, vars: Record<string, unknown>): string {
  return fill(template(`${name}.html`), vars, t);
}

/**
 * A page: the named body template inside views/layout.html, in the language of `frame.t`. Every template may use
 * {{site}} (the operator's display name), also as the {site} slot of a text.
 */
export function renderPage(name: string, frame: PageFrame, vars: Record<string, unknown>): string {
  const values = { site: frame.site.displayName, ...vars };
  const body = fill(template(`${name}.html`), values, frame.t);
  return fill(template('layout.html'), { site: frame.site.displayName, lang: frame.t.lang, title: frame.title, body }, frame.t);
}

/**
 * Answers with a page and the security headers of our pages; `formTargets`: origins besides ours that its form may
 * post or redirect to (CSP form-action). Content-Language names the language the page was rendered in.
 */
export function sendPage(ctx: Context, name: string, frame: PageFrame, vars: Record<string, unknown>, formTargets: string[] = []): void {
  setPageSecurityHeaders(ctx, formTargets);
  ctx.set('Content-Language', frame.t.lang);
  ctx.type = 'html';
  ctx.body = renderPage(name, frame, vars);
}

/** The way back to the operator's home page (IDMS_HOME_URL) as a fragment, or nothing when none is configured. */
export function homeLink(frame: PageFrame): string {
  return frame.site.homeUrl ? renderFragment('home-link', frame.t, { href: frame.site.homeUrl, site: frame.site.displayName }) : '';
}

export function readAsset(name: string): string | undefined {
  if (!/^[a-z0-9-]+\.css$/.test(name)) return undefined;
  try {
    return template(name);
  } catch {
    return undefined;
  }
}
