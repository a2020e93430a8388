// Introspection (RFC 7662) and revocation (RFC 7009) of JWT access tokens, which oidc-provider refuses for
// structured tokens: after its own client authentication, we answer for tokens we signed.
import querystring from 'node:querystring';
import type { Client } from 'oidc-provider';
import type { Config } from '../config/env.ts';
import { valServerStanding } from '../provisioning/standing.ts';
import { callerMayIntrospect, type ProviderExtension } from './provider.ts';
import { accessTokenVerifier, isAccessTokenRevoked, isClientToken, isGrantLive, revokeAccessToken, type AccessTokenClaims } from './access-tokens.ts';
import { eligibleServices, tokenEligibility, type Eligibility } from '../users/eligibility.ts';
import { servedResources } from './resources.ts';

/**
 * RFC 7662 §4: which JWT access tokens a client may learn about. Its own tokens; a public client nothing else. A
 * confidential client also those whose audience is a resource it is registered for: its client ID, the resource
 * servers it operates (client metadata resource_servers), and, for VAL users' tokens only, the shared VAL resource
 * (IDMS_DEFAULT_RESOURCE) every VAL server accepts. Another client's own (client_credentials) token is never meant
 * for the shared resource, so a VAL server cannot read another VAL server's provisioning or SEAL server tokens.
 */
export function tokenMeantFor(config: Config, client: Client, claims: AccessTokenClaims): boolean {
  if (claims.client_id === client.clientId) return true;
  if (client.clientAuthMethod === 'none') return false;
  const audiences = new Set(Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud]);
  if (audiences.has(client.clientId) || servedResources(client).some((r) => audiences.has(r))) return true;
  return audiences.has(config.defaultResource) && !isClientToken(claims);
}

/**
 * The token eligibility (src/users/eligibility.ts) of a VAL user's token as introspection answers it: active only
 * while the user may still get such a token (RFC 7662 §2.2: otherwise `active: false`, with nothing else).
 */
export function introspectionActive(answer: Eligibility): boolean {
  return eligibleServices(answer) !== undefined;
}

// What oidc-provider is handed instead of a JWT at introspection and revocation: a value it never issued (the adapter
// answers "unknown" without a round trip), so that it authenticates the client and answers `active: false` (or 200)
// instead of building, rendering and emitting its "structured token" error first (issue 16: ~8 % of an introspection).
const JWT_STAND_IN = '~jwt';

/** The JWT in a form body of the introspection or revocation endpoint, swapped for JWT_STAND_IN; undefined if none. */
function setAsideJwt(req: { body?: unknown }): string | undefined {
  if (typeof req.body !== 'string') return undefined;
  const form = querystring.parse(req.body);
  const token = form.token;
  if (typeof token !== 'string' || token.split('.').length !== 3) return undefined;
  form.token = JWT_STAND_IN;
  req.body = querystring.stringify(form);
  return token;
}

export const jwtAccessTokenEndpoints: ProviderExtension = (provider, { config, db, caches, signingKeys }) => {
  const verify = accessTokenVerifier(config.issuer, signingKeys);
  const jwtEndpoints = new Set([provider.pathFor('introspection'), provider.pathFor('revocation')]);

  provider.use(async (ctx, next) => {
    // src/http/protocol-input.ts hands the form on as req.body, which oidc-provider parses after this.
    const setAside = ctx.method === 'POST' && jwtEndpoints.has(ctx.path) ? setAsideJwt(ctx.req as { body?: unknown }) : undefined;
    await next();
    const route = ctx.oidc?.route;
    const client = ctx.oidc?.client;
    const body = ctx.body as { error?: string } | undefined;
    // A JWT set aside, or the case oidc-provider rejects as "structured token"; either way after it authenticated the client.
    const answered = setAside !== undefined ? !body?.error : body?.error === 'unsupported_token_type';
    if ((route !== 'introspection' && route !== 'revocation') || !client || !answered) return;
    const claims = await verify(setAside ?? String(ctx.oidc.params?.token ?? ''));

    if (route === 'introspection') {
      ctx.status = 200;
      ctx.body = { active: false };
      if (!claims || !tokenMeantFor(config, client, claims)) return;
      // A disabled or expired VAL server learns nothing (RFC 7662 §2.2: active false for a caller not allowed to
      // introspect the token); a removed one already failed client authentication (invalid_client).
      if (!(await callerMayIntrospect(db, caches, client.clientId))) return;
      if (await isAccessTokenRevoked(db, caches, claims.jti)) return;
      // The client the token was issued to must still exist and, if a VAL server, be in force (all cached).
      if (!(await provider.Client.find(claims.client_id))) return;
      const issuedTo = await valServerStanding(db, caches, claims.client_id);
      if (issuedTo === 'disabled' || issuedTo === 'expired') return;
      const grantId = typeof claims.grant_id === 'string' ? claims.grant_id : undefined;
      // How the token was issued decides whose it is, never sub === client_id (a VAL user ID may equal a client ID).
      if (!isClientToken(claims)) {
        // The grant and the VAL user in one round trip. A partner domain's VAL user (JWT-bearer grant) has no
        // local record, only a service mapping.
        if (!introspectionActive(await tokenEligibility(db, claims.sub, { grantId }))) return;
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
    if (claims && claims.client_id === client.clientId) await revokeAccessToken(db, caches, claims.jti, claims.exp);
    ctx.body = '';
    ctx.status = 200;
  });
};
