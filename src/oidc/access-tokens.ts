// Our own RFC 9068 access tokens: verification, and the revocation deny-list that makes them revocable.
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { PostgresAdapter } from './adapter.ts';

export type AccessTokenClaims = JWTPayload & {
  client_id: string;
  jti: string;
  exp: number;
  sub: string;
  scope?: string;
  val_service_ids?: string[];
  grant_id?: string;
  gty?: string;
};

/**
 * The `gty` claim extraTokenClaims puts in client_credentials access tokens (src/oidc/provider.ts): how the token was
 * issued, which is what makes it a client's own token. `sub` alone cannot tell (RFC 9068 §2.2 sets sub = client_id
 * there, and a VAL user ID may equal a client ID).
 */
export const CLIENT_CREDENTIALS_GTY = 'client_credentials';

/** True for a token a client got for itself (client_credentials), false for a VAL user's token, whatever sub says. */
export function isClientToken(claims: { gty?: unknown }): boolean {
  return claims.gty === CLIENT_CREDENTIALS_GTY;
}

// Far above any token we issue, and the size of Node's default header limit: bounds the parsing work per request.
export const MAX_TOKEN_LENGTH = 16 * 1024;

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export function publicJwks(keys: JWK[]): { keys: JWK[] } {
  return { keys: keys.map((k) => Object.fromEntries(Object.entries(k).filter(([name]) => !PRIVATE_MEMBERS.includes(name))) as JWK) };
}

export type AccessTokenVerifier = (token: string) => Promise<AccessTokenClaims | undefined>;

// A resource server introspects (and a VAL client presents at userinfo, the REST APIs and token exchange) the same
// token many times in its few minutes of life: a token that verified against a key set is remembered, so that its
// repeats skip the signature check (issue 16: the ES256 verification was a fifth of an introspection). Keyed by the
// whole token, so nothing can collide; its time claims are judged again at every use (an expired one is forgotten and
// checked in full, which refuses it with the verifier's own reason); the entries belong to one key set and go with it
// when the keys change (src/oidc/live-provider.ts builds new verifiers). Revocation is not cached here: the callers
// ask isAccessTokenRevoked after this. Bounded: ~1 KB per entry.
const VERIFIED_TOKENS = 1024;

/** The access tokens one verifier (one key set) has verified, with their claims. */
export class VerifiedTokens {
  readonly #entries = new Map<string, Readonly<AccessTokenClaims>>();

  /** The claims of a token verified before, while exp lies ahead and nbf (if any) does not (as jwtVerify judges them). */
  get(token: string): Readonly<AccessTokenClaims> | undefined {
    const known = this.#entries.get(token);
    if (!known) return undefined;
    const now = Math.floor(Date.now() / 1000);
    if (known.exp > now && !(typeof known.nbf === 'number' && known.nbf > now)) return known;
    this.#entries.delete(token);
    return undefined;
  }

  /** Remembers a token that just verified; answers its claims, frozen so that no caller changes them for the next. */
  remember(token: string, claims: AccessTokenClaims): Readonly<AccessTokenClaims> {
    const frozen = Object.freeze(claims);
    // Oldest first out (a Map keeps insertion order).
    if (this.#entries.size >= VERIFIED_TOKENS) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(token, frozen);
    return frozen;
  }
}

/** Verifies an access token this issuer signed (typ at+jwt, RFC 9068); undefined for anything else. */
export function accessTokenVerifier(issuer: string, signingKeys: JWK[]): AccessTokenVerifier {
  const keySet = createLocalJWKSet(publicJwks(signingKeys));
  const verified = new VerifiedTokens();
  return async (token) => {
    if (token.length > MAX_TOKEN_LENGTH) return undefined;
    const known = verified.get(token);
    if (known) return known;
    try {
      const { payload } = await jwtVerify(token, keySet, {
        issuer,
        typ: 'at+jwt',
        algorithms: ['ES256', 'RS256'],
        requiredClaims: ['jti', 'exp', 'client_id', 'sub'],
      });
      return verified.remember(token, payload as AccessTokenClaims);
    } catch {
      return undefined;
    }
  };
}

/** Revokes a JWT access token until its expiry; drops this process's cached answers at once (others hear the NOTIFY). */
export async function revokeAccessToken(db: Db, caches: Caches, jti: string, exp: number): Promise<void> {
  await db('revoked_access_tokens')
    .insert({ jti, expires_at: new Date(exp * 1000) })
    .onConflict('jti')
    .ignore();
  caches.changed('revoked_access_tokens');
}

export async function isAccessTokenRevoked(db: Db, caches: Caches, jti: string): Promise<boolean> {
  // Asked at every introspection and token exchange; revocations are rare and drop every instance's answers.
  return caches.read('revoked_access_tokens', jti, async () => (await db('revoked_access_tokens').where({ jti }).first('jti')) !== undefined);
}

/** False once the grant a user access token came from is gone (revoked on code or refresh token reuse, logout, expiry). */
export async function isGrantLive(db: Db, grantId: string): Promise<boolean> {
  return (await new PostgresAdapter(db, 'Grant').find(grantId)) !== undefined;
}

export async function sweepRevokedAccessTokens(db: Db): Promise<void> {
  await db('revoked_access_tokens').where('expires_at', '<', db.fn.now()).delete();
}
