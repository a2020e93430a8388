// RFC 7523 JWT-bearer grant at the partner S-IdMS (TS 33.180 annex B.7.4): a home S-IdMS's security token in, an access token for this domain's VAL services out.
import { errors, type TokenEndpointGrantContext } from 'oidc-provider';
import {
  AssertionRejected,
  readStandingAndSpendAssertion,
  replayRejected,
  spendPartnerAssertion,
  verifyPartnerAssertion,
} from '../../federation/partner-assertion.ts';
import { AUDIT_ACCEPT, federationSuccessEvent, withFederationAudit, type FederationTrail } from '../../federation/audit.ts';
import type { PartnerPolicy } from '../../federation/partners.ts';
import { eligibilityConditionSql, eligibilityOf, eligibleServices, isLocalUser, type Eligibility } from '../../users/eligibility.ts';
import { unsafeTextReason } from '../../users/ids.ts';
import { narrowServicesForRequest } from '../account.ts';
import { resourceServerInfo } from '../resources.ts';
import type { GrantDeps, GrantHandler } from './grant.ts';
import { tokenResponse, type IssuedToken } from './response.ts';

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** This server's token endpoint URL as a home IdMS may name it in a security token's aud (from the issuer, never the Host header). */
export function ownTokenEndpoint(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/token`;
}

/**
 * The partner-side rule shared by this grant and token exchange with subject_token_type jwt: verify the security
 * token, apply the partner's policy to the VAL user, spend the token, then issue an RFC 9068 access token whose
 * val_service_ids are this domain's own provisioning of that VAL user ID (TS 33.180 annex B.9), narrowed by the
 * policy. No refresh token: the home domain stays in charge of the session.
 */
export async function issueAccessTokenForAssertion(
  ctx: TokenEndpointGrantContext,
  deps: GrantDeps,
  assertion: string,
  target: string | undefined,
  trail: FederationTrail,
): Promise<IssuedToken> {
  const { config, db, caches } = deps;
  const { client, provider } = ctx.oidc;

  // The resource is checked before the assertion so that a request that cannot succeed does not spend the token.
  if (target !== undefined && unsafeTextReason(target)) throw new errors.InvalidRequest(`resource ${unsafeTextReason(target)}`);
  const indicator = target ?? config.defaultResource;
  const resourceServer = new provider.ResourceServer(indicator, await resourceServerInfo(config, db, caches, indicator));
  const scope = grantedScope(ctx.oidc.params.scope, client.scope, resourceServer.scopes);

  const verified = await asGrantError(trail, () =>
    verifyPartnerAssertion(db, caches, assertion, { issuer: config.issuer, tokenEndpoint: ownTokenEndpoint(config.issuer), clientId: client.clientId }),
  );
  trail.partner = verified.partner.issuer;
  trail.jti = verified.jti;
  trail.subject = verified.valUserId;

  // The VAL user's standing and, when the partner's policy accepts it, the spend with the success event, in one
  // statement (issue 16): the policy is decided first (a refused user does not spend the token, which can be
  // presented again once the cause is fixed), the replay after it, only signing follows.
  const event = federationSuccessEvent(client.clientId, trail);
  const { standing, spent } = await readStandingAndSpendAssertion(db, verified, spendCondition(verified.partner.policy), event);
  narrowServicesForRequest(ctx, verified.valUserId, partnerEligibility(eligibilityOf(standing), verified.partner.policy));
  await asGrantError(trail, async () => {
    // Not tried by the statement (a policy listing services) yet accepted here: spent on its own, as before.
    if (spent === undefined) await spendPartnerAssertion(db, verified, event);
    else if (!spent) throw replayRejected(verified);
  });
  trail.audited = true;

  const token = new provider.AccessToken({ accountId: verified.valUserId, client, gty: 'jwt-bearer', scope } as ConstructorParameters<
    typeof provider.AccessToken
  >[0]);
  token.resourceServer = resourceServer;
  ctx.oidc.entity('AccessToken', token);
  const accessToken = await token.save();
  return { accessToken, expiresIn: token.expiration, scope: token.scope, tokenType: token.tokenType };
}

// The standings a partner's policy accepts, for the spend that goes with the read (two texts: allowLocalUsers or
// not). A policy listing VAL services decides on which services the user has, which eligibilityConditionSql cannot
// tell: its statement tries no spend ('false') and the grant spends on its own when it accepts.
const spendConditions = new Map<boolean, string>();
function spendCondition(policy: PartnerPolicy): string {
  if (policy.services) return 'false';
  let condition = spendConditions.get(policy.allowLocalUsers);
  if (condition === undefined) {
    const accepts = (answer: Eligibility) => {
      try {
        partnerEligibility(answer, { allowLocalUsers: policy.allowLocalUsers });
        return true;
      } catch (err) {
        if (err instanceof errors.AccessDenied) return false;
        throw err;
      }
    };
    spendConditions.set(policy.allowLocalUsers, (condition = eligibilityConditionSql(accepts, false)));
  }
  return condition;
}

/**
 * The token eligibility (src/users/eligibility.ts) seen through a partner's policy: the answer with only the services
 * the policy allows, or access_denied saying why (the assertion itself was valid, so not invalid_grant).
 */
export function partnerEligibility(answer: Eligibility, policy: Pick<PartnerPolicy, 'allowLocalUsers' | 'services'>): Eligibility & { services: string[] } {
  if (isLocalUser(answer) && !policy.allowLocalUsers)
    throw new errors.AccessDenied('the VAL user is a local user of this domain; this partner may not vouch for local users');
  if (answer.kind === 'disabled') throw new errors.AccessDenied('the VAL user is disabled in this domain');
  const provisioned = eligibleServices(answer);
  if (!provisioned) throw new errors.AccessDenied('the VAL user is not provisioned for any VAL service in this domain');
  const services = policy.services ? provisioned.filter((s) => policy.services!.includes(s)) : provisioned;
  if (services.length === 0) throw new errors.AccessDenied('none of the VAL services provisioned here for the VAL user is allowed for this partner');
  return { kind: answer.kind === 'ok' ? 'ok' : 'visitor', services };
}

/** Runs a step of the partner-side check; its refusal becomes invalid_grant (RFC 7523 §3.1), the reason kept for the audit. */
async function asGrantError<T>(trail: FederationTrail, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (!(err instanceof AssertionRejected)) throw err;
    trail.partner ??= err.issuer;
    trail.jti ??= err.jti;
    throw new errors.InvalidGrant(err.reason);
  }
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

// The grant module (src/oidc/grants/index.ts).
export const grantType = JWT_BEARER_GRANT;
export const parameters: ReadonlySet<string> = new Set(['assertion', 'scope', 'resource']);
export const refusalAuditAction = (): string => AUDIT_ACCEPT;

export function handler(deps: GrantDeps): GrantHandler {
  return async (ctx) => {
    const trail: FederationTrail = { action: AUDIT_ACCEPT, grant: JWT_BEARER_GRANT };
    await withFederationAudit(deps.db, ctx.oidc.client.clientId, trail, async () => {
      const { assertion, resource } = ctx.oidc.params as { assertion?: string; resource?: string };
      // RFC 7523 §2.1: exactly one assertion (duplicates are refused by oidc-provider before this handler).
      if (!assertion) throw new errors.InvalidRequest('missing required parameter assertion');
      ctx.body = tokenResponse(await issueAccessTokenForAssertion(ctx, deps, assertion, resource, trail));
    });
  };
}
