// The userinfo endpoint accepts the access token of the login (OIDC Core §5.3), which is an RFC 9068 JWT for the VAL
// resource: oidc-provider only looks up opaque tokens there and refuses any with an audience.
import Provider from 'oidc-provider';
import type { JWK } from 'jose';
import type { Config } from '../config/env.ts';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { accessTokenVerifier, isAccessTokenRevoked, isClientToken } from './access-tokens.ts';

// Opaque token values are nanoids (no dot); a JWS has exactly two.
const looksLikeJws = (value: unknown): value is string => typeof value === 'string' && value.split('.').length === 3;

/**
 * At the userinfo route only, a JWT access token this issuer signed for a VAL user is presented to oidc-provider's
 * userinfo action as the token it stands for: same user, client, grant and scope, without an audience (the userinfo
 * endpoint is this server's own resource, not the resource server's). oidc-provider then applies its own rules
 * unchanged: the `openid` scope (insufficient_scope otherwise), the client and the grant still existing, the user
 * still eligible (findAccount), and only the claims the grant's OIDC scopes allow. A client's own token
 * (client_credentials) is never one; a revoked one is refused as at introspection. Tokens found at introspection and
 * revocation are not touched (src/oidc/jwt-introspection.ts answers for JWTs there).
 */
export function acceptJwtAccessTokensAtUserinfo(provider: Provider, config: Config, db: Db, caches: Caches, signingKeys: JWK[]): void {
  const verify = accessTokenVerifier(config.issuer, signingKeys);
  const { AccessToken } = provider;
  const find = AccessToken.find.bind(AccessToken) as (value: string, options?: { ignoreExpiration?: boolean }) => Promise<unknown>;
  AccessToken.find = (async (value: string, options?: { ignoreExpiration?: boolean }) => {
    if (!looksLikeJws(value) || Provider.ctx?.oidc?.route !== 'userinfo') return find(value, options);
    const claims = await verify(value);
    if (!claims || isClientToken(claims) || typeof claims.grant_id !== 'string') return undefined;
    if (await isAccessTokenRevoked(db, caches, claims.jti)) return undefined;
    return new AccessToken({
      jti: claims.jti,
      iat: claims.iat,
      exp: claims.exp,
      accountId: claims.sub,
      clientId: claims.client_id,
      grantId: claims.grant_id,
      scope: claims.scope,
    } as unknown as ConstructorParameters<typeof AccessToken>[0]);
  }) as typeof AccessToken.find;
}
