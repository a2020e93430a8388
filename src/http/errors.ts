// HTML error pages and the database-outage answer (503 + Retry-After): built here, used by every surface that
// answers them (our pages, oidc-provider's endpoints, the provisioning APIs' problem details).
import crypto from 'node:crypto';
import type Koa from 'koa';
import type { Context } from 'koa';
import { isDatabaseUnavailable } from '../db/availability.ts';
import { formatText, messagesFor } from '../interactions/i18n.ts';
import type { ErrorKind, Messages } from '../interactions/locales/en.ts';
import { homeLink, sendPage, type PageSite } from '../interactions/views.ts';
import { BodyTooLargeError } from './body.ts';

/** RFC 9110 §10.2.3: how long a client waits before retrying after a database outage. */
export const RETRY_AFTER_SECONDS = 5;
/** What every outage answer says, in the words of RFC 6749 §5.2 temporarily_unavailable. */
export const OUTAGE_DESCRIPTION = 'the service is temporarily unavailable, try again shortly';

/** What an error page shows: friendly text for `kind` (what happened, what to do), the OAuth code in small print. */
export type ErrorPage = {
  /** The OAuth error code (RFC 6749 §4.1.2.1, §5.2, or oidc-provider's), shown in small print for support. */
  error: string;
  /** Technical detail shown beside the code (oidc-provider's error_description). */
  description?: string;
  /** Which friendly text: default the one named by `error`, else the generic one. */
  kind?: ErrorKind;
  /** The log reference of an unexpected error (logWithReference). */
  reference?: string;
  /** The request's ui_locales (OIDC Core §3.1.2.1) when it was parsed already; else the query's. */
  uiLocales?: unknown;
};

function errorKind(page: ErrorPage, t: Messages): ErrorKind {
  const kind = page.kind ?? page.error;
  return Object.hasOwn(t.error.pages, kind) ? (kind as ErrorKind) : 'other';
}

/**
 * Answers with the HTML error page (views/error.html) in the request's language and the security headers of our
 * pages. `status` is left as it is when omitted (oidc-provider's renderError has set it already).
 */
export function renderErrorPage(ctx: Context, site: PageSite, page: ErrorPage, status?: number): void {
  if (status !== undefined) ctx.status = status;
  const t = messagesFor(ctx, page.uiLocales ?? ctx.query.ui_locales);
  const text = t.error.pages[errorKind(page, t)];
  const values = { site: site.displayName };
  const frame = { t, site, title: formatText(text.heading, values) };
  const detail = [page.description, page.reference && `${t.error.reference} ${page.reference}`].filter(Boolean).join(' · ');
  sendPage(ctx, 'error', frame, {
    heading: frame.title,
    what: formatText(text.what, values),
    todo: formatText(text.todo, values),
    wayBack: homeLink(frame),
    code: page.error,
    detail: detail ? ` · ${detail}` : '',
  });
}

/** The headers of every database-outage answer, whatever its body (the provisioning APIs carry them on their ProblemError). */
export function outageHeaders(): Record<string, string> {
  return { 'Retry-After': String(RETRY_AFTER_SECONDS) };
}

/**
 * The database cannot be reached: 503 with Retry-After, never cached. `page`: the HTML error page (browsers);
 * `oauth`: JSON error temporarily_unavailable (RFC 6749 §4.1.2.1, §5.2).
 */
export function outage503(ctx: Context, kind: 'page' | 'oauth', site: PageSite): void {
  // A redirect would need the client's redirect_uri checked against a client record we could not read.
  ctx.remove('Location');
  ctx.status = 503;
  ctx.set(outageHeaders());
  ctx.set('Cache-Control', 'no-store');
  if (kind === 'page') {
    renderErrorPage(ctx, site, { error: 'temporarily_unavailable', description: OUTAGE_DESCRIPTION });
    return;
  }
  ctx.type = 'json';
  ctx.body = { error: 'temporarily_unavailable', error_description: OUTAGE_DESCRIPTION };
}

/** Logs an unexpected error once, with its stack, under a fresh reference that the answer shows instead of the details. */
export function logWithReference(ctx: Context, err: unknown, log: (line: string) => void): string {
  const ref = crypto.randomUUID();
  log(`error ${ref} on ${ctx.method} ${ctx.path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return ref;
}

/** Errors on our own HTML routes (login, health, static): an error page, never a stack trace; details go to the log. */
export function pageErrors(log: (line: string) => void, site: PageSite): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof BodyTooLargeError)
        return renderErrorPage(ctx, site, { error: 'invalid_request', kind: 'request_too_large', description: err.message }, 413);
      if (isDatabaseUnavailable(err)) return outage503(ctx, 'page', site);
      const reference = logWithReference(ctx, err, log);
      renderErrorPage(ctx, site, { error: 'server_error', reference }, 500);
    }
  };
}
