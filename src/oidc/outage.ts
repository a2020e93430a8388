// Database outages on OIDC routes: 503 with OAuth error temporarily_unavailable (RFC 6749 §4.1.2.1, §5.2) instead of 500.
import type { Context } from 'koa';
import { isDatabaseUnavailable } from '../db/availability.ts';
import { setPageSecurityHeaders } from '../http/headers.ts';
import { renderPage } from '../interactions/views.ts';
import type { ProviderExtension } from './provider.ts';

export const RETRY_AFTER_SECONDS = 5;
const DESCRIPTION = 'the service is temporarily unavailable, try again shortly';

// Every route's error handler turns whatever it catches (from the adapter, findAccount, resource lookups, grants) into
// server_error and emits the original error; the outermost middleware then rewrites that one response. Errors thrown
// by other provider.use() middlewares (JWT introspection) reach it directly. Register this extension first.
export const databaseOutage: ProviderExtension = (provider) => {
  const failed = new WeakSet<object>();
  provider.on('server_error', (ctx: object, err: unknown) => {
    if (isDatabaseUnavailable(err)) failed.add(ctx);
  });
  provider.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      failed.add(ctx);
    }
    if (failed.has(ctx)) respondUnavailable(ctx);
  });
};

function respondUnavailable(ctx: Context): void {
  // A redirect would need the client's redirect_uri checked against a client record we could not read.
  ctx.remove('Location');
  ctx.status = 503;
  ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
  ctx.set('Cache-Control', 'no-store');
  if (ctx.response.is('html') || ctx.accepts('json', 'html') === 'html') {
    setPageSecurityHeaders(ctx);
    ctx.type = 'html';
    ctx.body = renderPage('error', 'Temporarily unavailable', { error: 'The service is temporarily unavailable.', description: 'Please try again in a few seconds.' });
    return;
  }
  ctx.type = 'json';
  ctx.body = { error: 'temporarily_unavailable', error_description: DESCRIPTION };
}
