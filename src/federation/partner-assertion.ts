// Partner side: verification of a security token presented by a VAL client (RFC 7523 §3; TS 33.180 annex B.8 and
// B.11.3 as profiled for SEAL by TS 33.434): what the standard requires and no more, from any vendor's S-IdMS.
import crypto from 'node:crypto';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { AuditEvent } from '../audit/store.ts';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { canonicalId, unsafeTextReason } from '../users/ids.ts';
import { findPartner, PARTNER_ALGS, type Partner } from './partners.ts';
import type { UserStandingRow } from '../provisioning/store.ts';
import { readStandingAndSpend, rememberSecurityToken, securityTokenReplayKey } from './replay.ts';
import { SECURITY_TOKEN_TYP } from './security-token.ts';

/** Clock-skew leeway on exp, iat and nbf: at most 30 s (TS 33.180 table B.8-1, `exp`). */
export const CLOCK_SKEW_SECONDS = 30;

// Far above any security token (under 1 KiB): bounds the decoding work an anonymous request can cause.
export const MAX_ASSERTION_LENGTH = 16 * 1024;

/** RFC 7515 §4.1.9 `typ` values accepted: ours, `JWT` (RFC 7519 §5.1, what other vendors send), or none at all. */
const ACCEPTED_TYPS = new Set([SECURITY_TOKEN_TYP, 'jwt']);

const MAX_CLAIM_LENGTH = 2048;

export type VerifiedAssertion = {
  partner: Partner;
  /** The VAL user ID (`sub`, TS 33.180 table B.8-1) in its canonical form. */
  valUserId: string;
  jti: string | undefined;
  exp: number;
  /** Key in the replay store: the jti, or a hash of the token when it has none. */
  replayKey: string;
};

/** Why a security token was refused: the reason goes to the audit trail, the client only sees invalid_grant. */
export class AssertionRejected extends Error {
  readonly reason: string;
  readonly issuer: string | undefined;
  readonly jti: string | undefined;
  constructor(reason: string, token?: { iss?: unknown; jti?: unknown }) {
    super(reason);
    this.reason = reason;
    // Kept for the audit trail only when they can be stored (no NUL: jsonb cannot hold it either).
    this.issuer = auditable(token?.iss);
    this.jti = auditable(token?.jti);
  }
}

function auditable(value: unknown): string | undefined {
  return typeof value === 'string' && !unsafeTextReason(value) ? value.slice(0, 300) : undefined;
}

export type AssertionContext = {
  /** This server's issuer: `aud` must contain it or the token endpoint URL. */
  issuer: string;
  /** This server's token endpoint URL, the address a home IdMS may have put in `aud` (table B.8-1: the B.7.2 `resource`). */
  tokenEndpoint: string;
  /** The authenticated client presenting the token. */
  clientId: string;
  now?: Date;
};

/**
 * Verifies a partner's security token against that partner's provisioned keys and policy: header (alg allowed for
 * the partner and matching the key, typ), issuer trusted here, signature, `aud`, time claims with bounded leeway and
 * the partner's lifetime limit, `sub` a valid VAL user ID, the presenting client allowed. Does not spend it (see
 * spendPartnerAssertion), so a refusal for another reason later does not burn the token. Throws AssertionRejected.
 */
export async function verifyPartnerAssertion(db: Db, caches: Caches, token: string, context: AssertionContext): Promise<VerifiedAssertion> {
  const now = context.now ?? new Date();
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  if (token.length > MAX_ASSERTION_LENGTH) throw new AssertionRejected(`malformed: longer than ${MAX_ASSERTION_LENGTH} characters`);
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw new AssertionRejected('malformed: not a compact JWS with a JSON claims set');
  }
  // RFC 8725 §3.1: the algorithm comes from our allow-list, never from the token alone.
  if (typeof header.alg !== 'string' || !(PARTNER_ALGS as readonly string[]).includes(header.alg)) {
    throw new AssertionRejected(`alg ${describeHeaderValue(header.alg)} not allowed`, unverified);
  }
  // RFC 8725 §3.11: our own access tokens (at+jwt) and any other explicitly typed JWT can never pass for a security token.
  if (header.typ !== undefined && (typeof header.typ !== 'string' || !ACCEPTED_TYPS.has(normaliseTyp(header.typ)))) {
    throw new AssertionRejected(`typ ${describeHeaderValue(header.typ)} is not ${SECURITY_TOKEN_TYP}, JWT or absent`, unverified);
  }
  // The unverified iss only selects which partner's keys to try; the signature check below binds it.
  const iss = unverified.iss;
  const partner = typeof iss === 'string' && iss.length <= MAX_CLAIM_LENGTH && !unsafeTextReason(iss) ? await findPartner(db, caches, iss) : undefined;
  if (!partner) throw new AssertionRejected('issuer is not a trusted partner', unverified);
  const { policy } = partner;
  const algorithms = policy.algorithms ?? [...PARTNER_ALGS];
  if (!algorithms.includes(header.alg))
    throw new AssertionRejected(`alg ${header.alg} not allowed by the partner policy (${algorithms.join(', ')})`, unverified);

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, partnerKeys(partner, now), {
      algorithms, // jose also refuses a key that does not fit the algorithm (RS256 needs RSA ≥ 2048 bits, ES256 P-256, …)
      issuer: partner.issuer,
      audience: [context.issuer, context.tokenEndpoint],
      clockTolerance: CLOCK_SKEW_SECONDS,
      maxTokenAge: policy.maxTokenLifetime, // also refuses an iat in the future beyond the leeway
      requiredClaims: ['iss', 'sub', 'aud', 'iat', 'exp'], // TS 33.180 table B.8-1: jti is not among them
      currentDate: now,
    }));
  } catch (err) {
    throw new AssertionRejected(describeJoseError(err), unverified);
  }

  const { iat, exp } = payload as { iat: number; exp: number };
  if (exp - iat > policy.maxTokenLifetime) throw new AssertionRejected(`lifetime ${exp - iat} s exceeds ${policy.maxTokenLifetime} s`, payload);

  // Table B.8-1: aud is the client_id plus the address of the target IdMS (this issuer, or the token endpoint the
  // client named as `resource`). Any value other than ours names a client, and then the presenting one must be among them.
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (aud.some((a) => typeof a !== 'string' || a.length > MAX_CLAIM_LENGTH)) throw new AssertionRejected('aud holds a value that is not a string', payload);
  const named = aud.filter((a) => a !== context.issuer && a !== context.tokenEndpoint);
  if (named.length > 0 && !named.includes(context.clientId)) throw new AssertionRejected('aud does not name the presenting client', payload);
  if (policy.clients && !policy.clients.includes(context.clientId)) {
    throw new AssertionRejected(`client ${context.clientId} may not present this partner's tokens (partner policy)`, payload);
  }

  // sub is the VAL user ID (table B.8-1: at most 255 bytes); the one ID rule gives its canonical form.
  const sub = canonicalId(payload.sub);
  if (!sub.ok) throw new AssertionRejected(`sub is not a valid VAL user ID: ${sub.reason}`, payload);
  // val_user_id is optional (our own tokens carry it); when present it must name the same user.
  if (payload.val_user_id !== undefined) {
    const other = canonicalId(payload.val_user_id);
    if (!other.ok || other.id !== sub.id) throw new AssertionRejected('val_user_id differs from sub', payload);
  }
  const { jti } = payload;
  if (jti !== undefined && (typeof jti !== 'string' || jti.length === 0 || jti.length > 255 || unsafeTextReason(jti))) {
    throw new AssertionRejected('jti must be a string of 1 to 255 characters', payload);
  }

  return { partner, valUserId: sub.id, jti, exp, replayKey: securityTokenReplayKey(token, jti) };
}

/**
 * Spends a verified token: accepted once across all instances, remembered until exp plus the leeway (after which
 * its exp check refuses it anyway). Throws AssertionRejected on a replay.
 */
export async function spendPartnerAssertion(db: Db, verified: VerifiedAssertion, audit?: AuditEvent): Promise<void> {
  // `audit`: the event of the token's acceptance, written by the same statement exactly when the token is spent.
  if (!(await rememberSecurityToken(db, verified.partner.issuer, verified.replayKey, keepUntil(verified), audit))) throw replayRejected(verified);
}

/**
 * The standing of the token's VAL user and, when it meets `condition` (eligibilityConditionSql), the spend of the
 * token with `audit`, in one statement (issue 16). `spent`: true when spent now, false on a replay (throw
 * replayRejected), undefined when the standing did not meet the condition and nothing was tried.
 */
export async function readStandingAndSpendAssertion(
  db: Db,
  verified: VerifiedAssertion,
  condition: string,
  audit: AuditEvent,
): Promise<{ standing: UserStandingRow; spent: boolean | undefined }> {
  const token = { issuer: verified.partner.issuer, key: verified.replayKey, keepUntil: keepUntil(verified) };
  const { standing, tried, spent } = await readStandingAndSpend(db, verified.valUserId, condition, token, audit);
  return { standing, spent: tried ? spent : undefined };
}

export function replayRejected(verified: VerifiedAssertion): AssertionRejected {
  return new AssertionRejected(verified.jti !== undefined ? 'replay: jti already used' : 'replay: token already used', {
    iss: verified.partner.issuer,
    jti: verified.jti,
  });
}

// Remembered until exp plus the leeway, after which its exp check refuses it anyway.
function keepUntil(verified: VerifiedAssertion): Date {
  return new Date((verified.exp + CLOCK_SKEW_SECONDS) * 1000);
}

// The key set of a partner record, per record object: jose imports each JWK once per set, so a set per request imported
// the partner's key at every JWT-bearer grant (issue 16 profile). A record re-read after a change (cache dropped by
// NOTIFY, or no cache) is a new object and gets a new set, so a removed key is never used from here.
const keySets = new WeakMap<object, JWTVerifyGetKey>();

function partnerKeys(partner: Partner, now: Date): JWTVerifyGetKey {
  if (partner.jwks) {
    let set = keySets.get(partner.jwks);
    if (!set) keySets.set(partner.jwks, (set = createLocalJWKSet(partner.jwks)));
    return set;
  }
  const pem = partner.certificate;
  return () => {
    if (!pem) throw new AssertionRejected('partner has no keys provisioned');
    const cert = new crypto.X509Certificate(pem);
    if (cert.validFromDate > now || cert.validToDate < now) throw new AssertionRejected('partner certificate is not valid now');
    return cert.publicKey;
  };
}

// An unverified header member may be any JSON value: String() of an object whose toString is not a function throws
// (fuzzer finding: {"typ":{"toString":""}} answered 500), so describe it as JSON, bounded.
function describeHeaderValue(value: unknown): string {
  return (typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined')).slice(0, 60);
}

// RFC 7515 §4.1.9: typ is case-insensitive and may omit the "application/" prefix.
function normaliseTyp(typ: string): string {
  const t = typ.toLowerCase();
  return t.startsWith('application/') ? t.slice('application/'.length) : t;
}

/** A short reason for a jose verification failure, for the audit trail. */
export function describeJoseError(err: unknown): string {
  if (err instanceof AssertionRejected) return err.reason;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature invalid';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no known key matches the token (kid/alg)';
  if (err instanceof joseErrors.JWTExpired) return `expired (${err.claim})`;
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim ${err.claim} ${err.reason === 'missing' ? 'missing' : 'check failed'}`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'alg not allowed';
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return 'malformed';
  return `key does not fit the token (${err instanceof Error ? err.message : String(err)})`;
}
