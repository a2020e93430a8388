// Database outages on OIDC routes: 503 with OAuth error temporarily_unavailable (RFC 6749 §4.1.2.1, §5.2) instead of 500.
import { isDatabaseUnavailable } from '../db/availability.ts';
import { outage503 } from '../http/errors.ts';
import type { ProviderExtension } from './provider.ts';

// Every route's error handler turns whatever it catches (from the adapter, findAccount, resource lookups, grants) into
// server_error and emits the original error; the outermost middleware then rewrites that one response. Errors thrown
// by other provider.use() middlewares (JWT introspection) reach it directly. Register this extension first.
export const databaseOutage: ProviderExtension = (provider, { config }) => {
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
    // Browsers get the page (the authorization endpoint's answers are pages), back-channel clients the OAuth error.
    if (failed.has(ctx)) outage503(ctx, ctx.response.is('html') || ctx.accepts('json', 'html') === 'html' ? 'page' : 'oauth', config);
  });
};
