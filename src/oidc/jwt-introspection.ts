// Introspection (RFC 7662) and revocation (RFC 7009) of JWT access tokens, which oidc-provider refuses for
// structured tokens: after its own client authentication, we answer for tokens we signed.
import type { ProviderExtension } from './provider.ts';
import { accessTokenVerifier, isAccessTokenRevoked, isGrantLive, revokeAccessToken } from './access-tokens.ts';
import { standingAllowsTokens } from '../federation/visitors.ts';
import { userStanding } from './account.ts';

export const jwtAccessTokenEndpoints: ProviderExtension = (provider, { config, db, signingKeys }) => {
  const verify = accessTokenVerifier(config.issuer, signingKeys);

  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;
    const client = ctx.oidc?.client;
    const body = ctx.body as { error?: string } | undefined;
    // Only the case oidc-provider rejects as "structured token", after it authenticated the client.
    if ((route !== 'introspection' && route !== 'revocation') || !client || body?.error !== 'unsupported_token_type') return;
    const claims = await verify(String(ctx.oidc.params?.token ?? ''));

    if (route === 'introspection') {
      ctx.status = 200;
      ctx.body = { active: false };
      if (!claims) return;
      // Same policy as for opaque tokens: public clients only see their own tokens.
      if (client.clientAuthMethod === 'none' && claims.client_id !== client.clientId) return;
      if (await isAccessTokenRevoked(db, claims.jti)) return;
      const grantId = typeof claims.grant_id === 'string' ? claims.grant_id : undefined;
      const userToken = claims.sub !== claims.client_id;
      if (userToken) {
        // The grant and the VAL user in one round trip. A partner domain's VAL user (JWT-bearer grant) has no
        // local record, only a service mapping.
        const standing = await userStanding(db, claims.sub, grantId);
        if ((grantId !== undefined && !standing.grantLive) || !standingAllowsTokens(standing)) return;
      } else if (grantId !== undefined && !(await isGrantLive(db, grantId))) return;
      ctx.body = { ...claims, active: true, token_type: 'Bearer' };
      return;
    }

    // RFC 7009 §2.2: an invalid or unknown token still gets 200.
    if (claims && claims.client_id !== client.clientId && client.clientAuthMethod !== 'none') {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'client is not authorized to revoke the presented token' };
      return;
    }
    if (claims && claims.client_id === client.clientId) await revokeAccessToken(db, claims.jti, claims.exp);
    ctx.body = '';
    ctx.status = 200;
  });
};
