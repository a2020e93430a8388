// Security tokens: the short-lived JWS the home S-IdMS issues for one partner S-IdMS (DESIGN protocol profile, TS 33.180 annex B.8).
import crypto, { type KeyObject } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';

/**
 * JOSE `typ` of a security token (RFC 7515 §4.1.9, explicit typing per RFC 8725 §3.11). Access tokens carry
 * `at+jwt` and ID tokens `JWT`, so none of the three can be presented as another.
 */
export const SECURITY_TOKEN_TYP = 'seal-security+jwt';
export const SECURITY_TOKEN_ALG = 'ES256';

export type SecurityTokenKey = { kid: string; key: CryptoKey | KeyObject | Uint8Array };

export type SecurityTokenClaims = {
  iss: string;
  sub: string;
  aud: [partner: string, clientId: string];
  val_user_id: string;
  iat: number;
  exp: number;
  jti: string;
};

/** The active ES256 key of this server: signing keys are ordered active first, newest first. */
export async function securityTokenKey(signingKeys: JWK[]): Promise<SecurityTokenKey> {
  const jwk = signingKeys.find((k) => k.alg === SECURITY_TOKEN_ALG && k.d !== undefined);
  if (!jwk?.kid) throw new Error(`no ${SECURITY_TOKEN_ALG} signing key loaded`);
  return { kid: jwk.kid, key: await importJWK(jwk, SECURITY_TOKEN_ALG) };
}

export type SecurityTokenRequest = {
  issuer: string;
  partner: string;
  clientId: string;
  valUserId: string;
  /** Seconds; the caller caps it at IDMS_SECURITY_TOKEN_TTL. */
  lifetime: number;
  now?: number;
  /** Drawn by the caller when it must be known before signing (the audit event written with the eligibility read). */
  jti?: string;
};

/** Signs a security token for exactly one partner: aud = [partner issuer, requesting client_id] (TS 33.180 annex B.8). */
export async function mintSecurityToken(key: SecurityTokenKey, request: SecurityTokenRequest): Promise<{ token: string; claims: SecurityTokenClaims }> {
  const iat = request.now ?? Math.floor(Date.now() / 1000);
  const claims: SecurityTokenClaims = {
    iss: request.issuer,
    sub: request.valUserId,
    aud: [request.partner, request.clientId],
    val_user_id: request.valUserId,
    iat,
    exp: iat + request.lifetime,
    jti: request.jti ?? crypto.randomUUID(),
  };
  const token = await new SignJWT(claims).setProtectedHeader({ alg: SECURITY_TOKEN_ALG, typ: SECURITY_TOKEN_TYP, kid: key.kid }).sign(key.key);
  return { token, claims };
}
