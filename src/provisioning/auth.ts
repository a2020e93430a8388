// Bearer-token authorization of provisioning calls (RFC 6750, RFC 9068 §4): which registered VAL server is calling.
import type Koa from 'koa';
import type { Config } from '../config/env.ts';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { isAccessTokenRevoked, isClientToken, type AccessTokenVerifier } from '../oidc/access-tokens.ts';
import { findClient } from '../oidc/clients.ts';
import { PROVISIONING_SCOPE, provisioningResource } from '../oidc/resources.ts';
import { forbidden, unauthorized } from './problem.ts';
import { checkSla, type Caller } from './service.ts';
import { findValServerByClientIdCached } from './store.ts';

/** `caches`: the process's (src/db/change-feed.ts): revocations, clients and VAL servers are read through them. */
export type AuthDeps = { config: Config; db: Db; caches: Caches; verifyAccessToken: AccessTokenVerifier };

const REALM = 'ss-idms-provisioning';
// RFC 6750 §2.1: b64token syntax.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * Which API a bearerAuth guards: its audience (RFC 9068 `aud`), its RFC 6750 realm, and the scope it requires, if
 * any. Default: the seed-named API (scope 3gpp:seal:idm:provisioning). TS 29.549 defines no scope for ss-ipp.
 */
export type GuardedApi = { audience: string; realm: string; scope?: string };

/** Sets ctx.state.caller to the VAL server bound to the token's client, or throws a 401/403 problem. */
export function bearerAuth(
  deps: AuthDeps,
  api: GuardedApi = { audience: provisioningResource(deps.config), realm: REALM, scope: PROVISIONING_SCOPE },
): Koa.Middleware {
  const { audience } = api;
  const challenge = (params = '') => `Bearer realm="${api.realm}"${api.scope ? `, scope="${api.scope}"` : ''}${params}`;
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    // RFC 6750 §3.1: a request without credentials gets the challenge without an error code.
    if (!header || !/^Bearer(\s|$)/i.test(header)) throw unauthorized('TOKEN_MISSING', 'a bearer access token is required', challenge());
    const token = BEARER.exec(header)?.[1];
    const claims = token ? await deps.verifyAccessToken(token) : undefined;
    if (!claims) throw unauthorized('TOKEN_INVALID', 'the access token is invalid or expired', challenge(', error="invalid_token"'));
    if (await isAccessTokenRevoked(deps.db, deps.caches, claims.jti))
      throw unauthorized('TOKEN_INVALID', 'the access token was revoked', challenge(', error="invalid_token"'));
    ctx.state.actor = claims.client_id;

    // RFC 9068 §4: the resource server checks that it is the token's audience (a token for an S-KMS is not for us).
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(audience)) throw forbidden('TOKEN_AUDIENCE_MISMATCH', `the access token is not for ${audience}`);
    if (
      api.scope &&
      !String(claims.scope ?? '')
        .split(' ')
        .includes(api.scope)
    ) {
      throw forbidden('INSUFFICIENT_SCOPE', `the access token lacks the scope ${api.scope}`, {
        headers: { 'WWW-Authenticate': challenge(', error="insufficient_scope"') },
      });
    }
    // A VAL server calls with its own client_credentials token, never with a user's token. How the token was issued
    // decides (isClientToken), not sub === client_id: a VAL user ID may equal a client ID.
    if (!isClientToken(claims)) throw forbidden('NOT_A_VAL_SERVER', 'the access token was issued to a user, not to a VAL server');
    // Its tokens stop the moment its client is removed (`client remove`): the token no longer names a client (cached).
    if (!(await findClient(deps.db, deps.caches, claims.client_id))) {
      throw unauthorized('TOKEN_INVALID', 'the client the access token was issued to no longer exists', challenge(', error="invalid_token"'));
    }
    const valServer = await findValServerByClientIdCached(deps.db, deps.caches, claims.client_id);
    const caller: Caller = { clientId: claims.client_id, requesterIdentity: valServer?.requester_identity ?? claims.client_id };
    // ... and when it is disabled or its SLA expires, for reads as for writes (writes check the SLA again, locked).
    checkSla(valServer, caller, [], new Date());
    ctx.state.actor = caller.requesterIdentity;
    ctx.state.caller = caller;
    await next();
  };
}
