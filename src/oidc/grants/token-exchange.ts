// RFC 8693 token exchange: at the home S-IdMS an access token becomes a security token for one partner (TS 33.180
// annex B.7.2/B.7.3); at a partner, a security token becomes an access token.
import crypto from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { errors } from 'oidc-provider';
import { AUDIT_ACCEPT, AUDIT_ISSUE, federationSuccessEvent, readStandingAndAudit, withFederationAudit, type FederationTrail } from '../../federation/audit.ts';
import { describeJoseError, MAX_ASSERTION_LENGTH } from '../../federation/partner-assertion.ts';
import { findPartnerByTarget } from '../../federation/partners.ts';
import { mintSecurityToken, securityTokenKey, type SecurityTokenKey } from '../../federation/security-token.ts';
import { isAccessTokenRevoked, isClientToken, publicJwks, VerifiedTokens, type AccessTokenClaims } from '../access-tokens.ts';
import { eligibilityConditionSql, eligibilityOf, type Eligibility } from '../../users/eligibility.ts';
import { unsafeTextReason } from '../../users/ids.ts';
import type { GrantDeps, GrantHandler } from './grant.ts';
import { issueAccessTokenForAssertion } from './jwt-bearer.ts';
import { tokenResponse } from './response.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

// TS 33.180 annex B.7.2: the home side exchanges the user's access token (never echoes the value sent: it is client input).
const HOME_SUBJECT_TYPES = `subject_token_type must be ${ACCESS_TOKEN_TYPE} (an access token of this server) to obtain a security token for a partner S-IdMS`;

type ExchangeParams = {
  subject_token?: string;
  subject_token_type?: string;
  actor_token?: string;
  actor_token_type?: string;
  requested_token_type?: string;
  audience?: string | string[];
  resource?: string | string[];
};

// The grant module (src/oidc/grants/index.ts).
export const grantType = TOKEN_EXCHANGE_GRANT;
export const parameters: ReadonlySet<string> = new Set([
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'requested_token_type',
  'audience',
  'resource',
  'scope',
]);
// RFC 8693 §2.1 allows several audience/resource values; they are refused by the handler with invalid_target, not as duplicates.
export const duplicates: ReadonlySet<string> = new Set(['audience', 'resource']);
export const refusalAuditAction = (params: Record<string, unknown>): string => (params.subject_token_type === JWT_TOKEN_TYPE ? AUDIT_ACCEPT : AUDIT_ISSUE);

/** The handler for one provider instance: it verifies subject tokens and signs security tokens with that instance's keys. */
export function handler(deps: GrantDeps): GrantHandler {
  const { config, db, caches, signingKeys } = deps;
  const ownKeys = createLocalJWKSet(publicJwks(signingKeys));
  // A VAL client exchanges the same access token again when its short-lived security token runs out.
  const verified = new VerifiedTokens();
  let signer: Promise<SecurityTokenKey> | undefined;
  const signingKey = () =>
    (signer ??= securityTokenKey(signingKeys).catch((err: unknown) => {
      signer = undefined;
      throw err;
    }));

  // Same checks as accessTokenVerifier (RFC 9068 §4), keeping the reason of a refusal for the audit trail.
  // An ID token (typ JWT), a security token (typ seal-security+jwt) or an opaque refresh token fails here.
  async function verifySubjectToken(token: string): Promise<AccessTokenClaims> {
    if (token.length > MAX_ASSERTION_LENGTH) throw new errors.InvalidGrant('subject_token is too long to be an access token of this issuer');
    const known = verified.get(token);
    if (known) return known;
    try {
      const { payload } = await jwtVerify(token, ownKeys, {
        issuer: config.issuer,
        typ: 'at+jwt',
        algorithms: ['ES256', 'RS256'],
        requiredClaims: ['jti', 'exp', 'client_id', 'sub'],
      });
      return verified.remember(token, payload as AccessTokenClaims);
    } catch (err) {
      throw new errors.InvalidGrant(`subject_token is not a valid access token of this issuer: ${describeJoseError(err)}`);
    }
  }

  return async (ctx) => {
    const params = ctx.oidc.params as ExchangeParams;
    const { client } = ctx.oidc;
    const partnerSide = params.subject_token_type === JWT_TOKEN_TYPE;
    const trail: FederationTrail = { action: partnerSide ? AUDIT_ACCEPT : AUDIT_ISSUE, grant: TOKEN_EXCHANGE_GRANT };

    await withFederationAudit(db, client.clientId, trail, async () => {
      if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter subject_token');
      if (!params.subject_token_type) throw new errors.InvalidRequest('missing required parameter subject_token_type');
      // RFC 8693 §2.1: delegation needs an actor token; this profile only does impersonation of the VAL user.
      if (params.actor_token !== undefined || params.actor_token_type !== undefined) throw new errors.InvalidRequest('actor_token is not supported');
      const target = singleTarget(params);
      if (target !== undefined && unsafeTextReason(target)) throw new errors.InvalidRequest(`audience/resource ${unsafeTextReason(target)}`);

      // The home side is asked for when the target names a partner S-IdMS (TS 33.180 annex B.7.2); there only an
      // access token of this server can be exchanged, whatever other type the client says it sent.
      const homeTarget = target !== undefined ? await findPartnerByTarget(db, caches, target) : undefined;
      if (homeTarget && params.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(HOME_SUBJECT_TYPES);

      if (partnerSide) {
        // Partner side (DESIGN): the subject token is a partner's security token, as with the JWT-bearer grant.
        if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
          throw new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE} for a security token`);
        }
        const issued = await issueAccessTokenForAssertion(ctx, deps, params.subject_token, target, trail);
        ctx.body = tokenResponse({ ...issued, issuedTokenType: ACCESS_TOKEN_TYPE });
        return;
      }

      if (params.subject_token_type !== ACCESS_TOKEN_TYPE)
        throw new errors.InvalidRequest(`${HOME_SUBJECT_TYPES}; ${JWT_TOKEN_TYPE} is a partner S-IdMS's security token, for an access token of this server`);
      if (params.requested_token_type !== undefined && params.requested_token_type !== JWT_TOKEN_TYPE) {
        throw new errors.InvalidRequest(`requested_token_type must be ${JWT_TOKEN_TYPE}`);
      }
      if (!target) throw new errors.InvalidTarget('audience or resource must name the partner S-IdMS');
      trail.partner = target;
      // TS 33.180 annex B.7.2 names the partner by `resource` (its token endpoint URL); RFC 8693 by `audience`. Both
      // may be its issuer or its registered token endpoint. Looked up on every request (cache dropped on any change),
      // so `partner remove` takes effect at once on every instance.
      const partner = homeTarget;
      if (!partner) throw new errors.InvalidTarget('audience is not a configured partner S-IdMS (its issuer or registered token endpoint)');
      trail.partner = partner.issuer;

      const subject = await verifySubjectToken(params.subject_token);
      trail.subject = subject.sub;
      // Policy (RFC 8693 §2.1 leaves it to the server): only the client the access token was issued to may exchange it.
      if (subject.client_id !== client.clientId) throw new errors.InvalidGrant('subject_token was issued to another client');
      if (await isAccessTokenRevoked(db, caches, subject.jti)) throw new errors.InvalidGrant('subject_token has been revoked');
      // A client_credentials token (told by how it was issued, not by sub === client_id: a VAL user ID may equal a
      // client ID) has no VAL user to migrate.
      if (isClientToken(subject)) throw new errors.InvalidGrant('subject_token does not represent a VAL user');
      // The token's grant and its VAL user in one round trip, with the success event when the user is eligible
      // (issue 16): the token's jti is drawn first and only signing follows. Without a signing key or with no
      // lifetime left the request fails after the read, as before, so no event goes with it.
      const grantId = typeof subject.grant_id === 'string' ? subject.grant_id : undefined;
      const now = Math.floor(Date.now() / 1000);
      // Never outlives the access token it was exchanged for, nor IDMS_SECURITY_TOKEN_TTL.
      const lifetime = Math.min(config.ttl.securityToken, subject.exp - now);
      const key = await signingKey().catch(() => undefined);
      const jti = crypto.randomUUID();
      const event = key && lifetime >= 1 ? federationSuccessEvent(client.clientId, { ...trail, jti }) : undefined;
      const grantAsked = grantId !== undefined;
      const condition = grantAsked ? EXCHANGE_CONDITION.grantAsked : EXCHANGE_CONDITION.noGrant;
      const { standing, audited } = await readStandingAndAudit(db, subject.sub, grantId, condition, event);
      const refusal = exchangeRefusal(eligibilityOf(standing, grantAsked));
      if (refusal) throw refusal;

      if (lifetime < 1) throw new errors.InvalidGrant('subject_token expires now');
      const { token } = await mintSecurityToken(key ?? (await signingKey()), {
        issuer: config.issuer,
        partner: partner.issuer, // table B.8-1 aud: always the partner's issuer plus the client_id, however it was named
        clientId: client.clientId,
        valUserId: subject.sub,
        lifetime,
        now,
        jti,
      });
      trail.jti = jti;
      trail.audited = audited;
      // RFC 8693 §2.2.1: the issued token is not an OAuth access token for a resource, hence token_type N_A.
      ctx.body = tokenResponse({ accessToken: token, issuedTokenType: JWT_TOKEN_TYPE, tokenType: 'N_A', expiresIn: lifetime });
    });
  };
}

/**
 * The token eligibility (src/users/eligibility.ts) of the subject token's VAL user as token exchange answers it:
 * invalid_grant (RFC 8693 §2.2.2) unless this domain's own user may still get tokens. A partner domain's user
 * (visitor) is not exchanged onward: their home domain issues their security tokens.
 */
export function exchangeRefusal(answer: Eligibility): InstanceType<typeof errors.InvalidGrant> | undefined {
  switch (answer.kind) {
    case 'ok':
      return undefined;
    // RFC 9700 §4.14.2: a replayed refresh token (or logout) revokes the grant, and with it its access tokens.
    case 'grant_revoked':
      return new errors.InvalidGrant('the grant of subject_token has been revoked');
    case 'no_service':
      return new errors.InvalidGrant('the VAL user is no longer provisioned for any VAL service');
    case 'disabled':
    case 'unknown':
    case 'visitor':
      return new errors.InvalidGrant('the VAL user is unknown or disabled');
  }
}

// The standings token exchange accepts (exchangeRefusal's), with and without a grant to ask about, for the success
// event written with the read.
const accepted = (answer: Eligibility) => exchangeRefusal(answer) === undefined;
const EXCHANGE_CONDITION = { grantAsked: eligibilityConditionSql(accepted, true), noGrant: eligibilityConditionSql(accepted, false) };

/** The one target named by audience and/or resource (same meaning here); a security token is for exactly one partner. */
function singleTarget(params: ExchangeParams): string | undefined {
  const values = new Set([params.audience, params.resource].flat().filter((v): v is string => typeof v === 'string' && v !== ''));
  if (values.size > 1) throw new errors.InvalidTarget('exactly one audience (partner S-IdMS) may be named');
  return [...values][0];
}
