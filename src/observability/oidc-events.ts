// Connects an oidc-provider instance to logs and metrics: route names, issued tokens, refused grants, server errors.
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from './logger.ts';
import { metrics } from './metrics.ts';
import { requestIdOf, setRouteName } from './request-log.ts';

type OAuthError = Error & { error?: string; error_description?: string; status?: number };

/** Called for every provider the composition builds (a new one after each signing key rotation). */
export function observeProvider(provider: Provider, logger: Logger): void {
  // oidc-provider routes requests itself; its route name (token, authorization, jwks…) labels our metrics.
  provider.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      const route = (ctx as KoaContextWithOIDC).oidc?.route;
      if (route) setRouteName(ctx.req, route);
    }
  });

  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    metrics.tokensIssued(ctx.oidc.params?.grant_type, ctx.body);
  });

  provider.on('grant.error', (ctx: KoaContextWithOIDC, err: OAuthError) => {
    metrics.tokenError(ctx.oidc?.params?.grant_type, err.error);
    // Only the error code and its fixed description: request parameters carry codes, tokens and secrets.
    logger.debug({ requestId: requestIdOf(ctx.req), error: err.error, description: err.error_description }, 'token request refused');
  });

  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    logger.error({ requestId: requestIdOf(ctx.req), route: ctx.oidc?.route, err }, 'oidc-provider server error');
  });
}
