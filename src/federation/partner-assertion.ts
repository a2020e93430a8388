// Partner side: verification of a security token presented by a VAL client (RFC 7523 §3, DESIGN protocol profile).
import crypto from 'node:crypto';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Db } from '../db/knex.ts';
import { findPartner, PARTNER_ALGS, type Partner } from './partners.ts';
import { rememberSecurityToken } from './replay.ts';
import { SECURITY_TOKEN_TYP } from './security-token.ts';

/** Clock-skew leeway on exp, iat and nbf: at most 30 s (TS 33.180 annex B.8). */
export const CLOCK_SKEW_SECONDS = 30;

// Far above any security token (under 1 KiB): bounds the decoding work an anonymous request can cause.
export const MAX_ASSERTION_LENGTH = 16 * 1024;

export type VerifiedAssertion = { issuer: string; valUserId: string; jti: string; exp: number };

/** Why a security token was refused: the reason goes to the audit trail, the client only sees invalid_grant. */
export class AssertionRejected extends Error {
  readonly reason: string;
  readonly issuer: string | undefined;
  readonly jti: string | undefined;
  constructor(reason: string, token?: { iss?: unknown; jti?: unknown }) {
    super(reason);
    this.reason = reason;
    this.issuer = typeof token?.iss === 'string' ? token.iss.slice(0, 300) : undefined;
    this.jti = typeof token?.jti === 'string' ? token.jti.slice(0, 300) : undefined;
  }
}

export type AssertionContext = {
  /** This server's issuer: must be in aud. */
  issuer: string;
  /** The authenticated client presenting the token: must be the other aud value. */
  clientId: string;
  /** IDMS_SECURITY_TOKEN_TTL of this server: the longest lifetime (exp − iat) accepted. */
  maxLifetime: number;
  now?: Date;
};

/**
 * Verifies a partner's security token: header (alg allow-list, typ), issuer trusted here, signature against that
 * partner's provisioned keys, aud, time claims with bounded leeway and lifetime, then records its jti so it is
 * accepted once across all instances. Throws AssertionRejected with the reason.
 */
export async function verifyPartnerAssertion(db: Db, token: string, context: AssertionContext): Promise<VerifiedAssertion> {
  const now = context.now ?? new Date();
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: ReturnType<typeof decodeJwt>;
  if (token.length > MAX_ASSERTION_LENGTH) throw new AssertionRejected(`malformed: longer than ${MAX_ASSERTION_LENGTH} characters`);
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw new AssertionRejected('malformed: not a compact JWS with a JSON claims set');
  }
  // RFC 8725 §3.1: the algorithm comes from our allow-list, never from the token alone.
  if (typeof header.alg !== 'string' || !(PARTNER_ALGS as readonly string[]).includes(header.alg)) {
    throw new AssertionRejected(`alg ${String(header.alg)} not allowed`, unverified);
  }
  if (typeof header.typ !== 'string' || normaliseTyp(header.typ) !== SECURITY_TOKEN_TYP) {
    throw new AssertionRejected(`typ ${String(header.typ)} is not ${SECURITY_TOKEN_TYP}`, unverified);
  }
  // The unverified iss only selects which partner's keys to try; the signature check below binds it.
  const partner = typeof unverified.iss === 'string' ? await findPartner(db, unverified.iss) : undefined;
  if (!partner) throw new AssertionRejected('issuer is not a trusted partner', unverified);

  let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
  try {
    ({ payload } = await jwtVerify(token, partnerKeys(partner, now), {
      algorithms: [...PARTNER_ALGS],
      typ: SECURITY_TOKEN_TYP,
      issuer: partner.issuer,
      audience: context.issuer,
      clockTolerance: CLOCK_SKEW_SECONDS,
      maxTokenAge: context.maxLifetime, // also refuses an iat in the future beyond the leeway
      requiredClaims: ['iss', 'sub', 'aud', 'iat', 'exp', 'jti'],
      currentDate: now,
    }));
  } catch (err) {
    throw new AssertionRejected(describeJoseError(err), unverified);
  }

  const { sub, jti, iat, exp } = payload as { sub: string; jti: string; iat: number; exp: number };
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  // DESIGN: aud is exactly this partner plus the requesting client, so the token is for one partner and one client.
  if (!aud.includes(context.clientId)) throw new AssertionRejected('aud does not name the presenting client', payload);
  if (aud.some((a) => a !== context.issuer && a !== context.clientId)) throw new AssertionRejected('aud names other parties than this issuer and the client', payload);
  if (exp - iat > context.maxLifetime) throw new AssertionRejected(`lifetime ${exp - iat} s exceeds ${context.maxLifetime} s`, payload);
  if (payload.val_user_id !== sub) throw new AssertionRejected('val_user_id missing or different from sub', payload);
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 255) throw new AssertionRejected('jti must be a string of 1 to 255 characters', payload);

  // Checked last, so a token refused for another reason does not burn its jti.
  const keepUntil = new Date((exp + CLOCK_SKEW_SECONDS) * 1000);
  if (!(await rememberSecurityToken(db, partner.issuer, jti, keepUntil))) throw new AssertionRejected('replay: jti already used', payload);

  return { issuer: partner.issuer, valUserId: sub, jti, exp };
}

function partnerKeys(partner: Partner, now: Date): JWTVerifyGetKey {
  if (partner.jwks) return createLocalJWKSet(partner.jwks);
  const pem = partner.certificate;
  return () => {
    if (!pem) throw new AssertionRejected('partner has no keys provisioned');
    const cert = new crypto.X509Certificate(pem);
    if (cert.validFromDate > now || cert.validToDate < now) throw new AssertionRejected('partner certificate is not valid now');
    return cert.publicKey;
  };
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
