// HTML error pages and the database-outage answer (503 + Retry-After): built here, used by every surface that
// answers them (our pages, oidc-provider's endpoints, the provisioning APIs' problem details).
import crypto from 'node:crypto';
import type Koa from 'koa';
import type { Context } from 'koa';
import { isDatabaseUnavailable } from '../db/availability.ts';
import { renderPage } from '../interactions/views.ts';
import { BodyTooLargeError } from './body.ts';
import { setPageSecurityHeaders } from './headers.ts';

/** RFC 9110 §10.2.3: how long a client waits before retrying after a database outage. */
export const RETRY_AFTER_SECONDS = 5;
/** What every outage answer says, in the words of RFC 6749 §5.2 temporarily_unavailable. */
export const OUTAGE_DESCRIPTION = 'the service is temporarily unavailable, try again shortly';

export type ErrorPage = { title: string; error: string; description: string };

const OUTAGE_PAGE: ErrorPage = { title: 'Temporarily unavailable', error: 'The service is temporarily unavailable.', description: 'Please try again in a few seconds.' };

/**
 * Answers with the HTML error page (views/error.html) and the security headers of our pages. `status` is left as
 * it is when omitted (oidc-provider's renderError has set it already).
 */
export function renderErrorPage(ctx: Context, page: ErrorPage, status?: number): void {
  if (status !== undefined) ctx.status = status;
  setPageSecurityHeaders(ctx);
  ctx.type = 'html';
  ctx.body = renderPage('error', page.title, { error: page.error, description: page.description });
}

/** The headers of every database-outage answer, whatever its body (the provisioning APIs carry them on their ProblemError). */
export function outageHeaders(): Record<string, string> {
  return { 'Retry-After': String(RETRY_AFTER_SECONDS) };
}

/**
 * The database cannot be reached: 503 with Retry-After, never cached. `page`: the HTML error page (browsers);
 * `oauth`: JSON error temporarily_unavailable (RFC 6749 §4.1.2.1, §5.2).
 */
export function outage503(ctx: Context, kind: 'page' | 'oauth'): void {
  // A redirect would need the client's redirect_uri checked against a client record we could not read.
  ctx.remove('Location');
  ctx.status = 503;
  ctx.set(outageHeaders());
  ctx.set('Cache-Control', 'no-store');
  if (kind === 'page') {
    renderErrorPage(ctx, OUTAGE_PAGE);
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
export function pageErrors(log: (line: string) => void): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof BodyTooLargeError) return renderErrorPage(ctx, { title: 'Request too large', error: 'Request too large', description: err.message }, 413);
      if (isDatabaseUnavailable(err)) return outage503(ctx, 'page');
      const ref = logWithReference(ctx, err, log);
      renderErrorPage(ctx, { title: 'Error', error: 'Internal error', description: `Reference ${ref}` }, 500);
    }
  };
}
