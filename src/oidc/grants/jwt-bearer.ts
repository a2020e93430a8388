// RFC 7523 JWT-bearer grant at the partner S-IdMS: a home S-IdMS's security token in, an access token for this domain's VAL services out.
import { errors, type TokenEndpointGrantContext } from 'oidc-provider';
import { AssertionRejected, verifyPartnerAssertion } from '../../federation/partner-assertion.ts';
import { AUDIT_ACCEPT, withFederationAudit, type FederationTrail } from '../../federation/audit.ts';
import { standingForRequest } from '../account.ts';
import type { ProviderDeps, ProviderExtension } from '../provider.ts';
import { resourceServerInfo } from '../resources.ts';
import { refuseUnlistedGrant } from './unauthorized-client.ts';

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export type IssuedAccessToken = { accessToken: string; expiresIn: number; scope: string | undefined; tokenType: string };

/**
 * The partner-side rule shared by this grant and token exchange with subject_token_type jwt: verify the security
 * token, then issue an RFC 9068 access token whose val_service_ids are this domain's own provisioning of that
 * VAL user ID (added by extraTokenClaims). No refresh token: the home domain stays in charge of the session.
 */
export async function issueAccessTokenForAssertion(ctx: TokenEndpointGrantContext, deps: ProviderDeps, assertion: string, target: string | undefined, trail: FederationTrail): Promise<IssuedAccessToken> {
  const { config, db } = deps;
  const { client, provider } = ctx.oidc;

  // The resource is checked before the assertion so that a request that cannot succeed does not spend its jti.
  const indicator = target ?? config.defaultResource;
  const resourceServer = new provider.ResourceServer(indicator, await resourceServerInfo(config, db, indicator));
  const scope = grantedScope(ctx.oidc.params.scope, client.scope, resourceServer.scopes);

  let verified;
  try {
    verified = await verifyPartnerAssertion(db, assertion, { issuer: config.issuer, clientId: client.clientId, maxLifetime: config.ttl.securityToken });
  } catch (err) {
    if (!(err instanceof AssertionRejected)) throw err;
    trail.partner = err.issuer;
    trail.jti = err.jti;
    throw new errors.InvalidGrant(err.reason);
  }
  trail.partner = verified.issuer;
  trail.jti = verified.jti;
  trail.subject = verified.valUserId;

  // The VAL user may have no credentials here (only a service mapping); a local record only matters if disabled.
  const local = await standingForRequest(ctx, db, verified.valUserId);
  if (local.status !== undefined && local.status !== 'active') throw new errors.AccessDenied('the VAL user is disabled in this domain');
  if (local.services.length === 0) {
    throw new errors.AccessDenied('the VAL user is not provisioned for any VAL service in this domain');
  }

  const token = new provider.AccessToken({ accountId: verified.valUserId, client, gty: 'jwt-bearer', scope } as ConstructorParameters<typeof provider.AccessToken>[0]);
  token.resourceServer = resourceServer;
  ctx.oidc.entity('AccessToken', token);
  const accessToken = await token.save();
  return { accessToken, expiresIn: token.expiration, scope: token.scope, tokenType: token.tokenType };
}

/**
 * Requested scopes (or, when none are requested, the resource server's) that both the client's registration and
 * the resource server allow. Asking for a scope the client is not registered for is invalid_scope (RFC 6749 §5.2);
 * scopes the resource server does not define are dropped, as oidc-provider does for client_credentials.
 */
function grantedScope(requested: unknown, clientScope: string | undefined, resourceScopes: Set<string>): string | undefined {
  const allowed = new Set((clientScope ?? '').split(' ').filter(Boolean));
  const asked = typeof requested === 'string' && requested ? requested.split(' ').filter(Boolean) : [...resourceScopes];
  if (typeof requested === 'string' && requested) {
    const refused = asked.filter((s) => !allowed.has(s));
    if (refused.length) throw new errors.InvalidScope('requested scope is not allowed for this client', refused.join(' '));
  }
  return asked.filter((s) => allowed.has(s) && resourceScopes.has(s)).join(' ') || undefined;
}

export const jwtBearerGrant: ProviderExtension = (provider, deps) => {
  refuseUnlistedGrant(provider, deps.db, JWT_BEARER_GRANT, () => AUDIT_ACCEPT);
  provider.registerGrantType(
    JWT_BEARER_GRANT,
    async (ctx) => {
      const trail: FederationTrail = { action: AUDIT_ACCEPT, grant: JWT_BEARER_GRANT };
      await withFederationAudit(deps.db, ctx.oidc.client.clientId, trail, async () => {
        const { assertion, resource } = ctx.oidc.params as { assertion?: string; resource?: string };
        // RFC 7523 §2.1: exactly one assertion (duplicates are refused by oidc-provider before this handler).
        if (!assertion) throw new errors.InvalidRequest('missing required parameter assertion');
        const issued = await issueAccessTokenForAssertion(ctx, deps, assertion, resource, trail);
        ctx.body = {
          access_token: issued.accessToken,
          token_type: issued.tokenType,
          expires_in: issued.expiresIn,
          ...(issued.scope ? { scope: issued.scope } : {}),
        };
      });
    },
    ['assertion', 'scope', 'resource'],
  );
};
