// Replay store for security tokens (each accepted once), shared by every instance through PostgreSQL.
import crypto from 'node:crypto';
import type { Db } from '../db/knex.ts';

/**
 * The key a security token is remembered under: its `jti` (RFC 7519 §4.1.7: unique per issuer), or, for a token
 * without one (TS 33.180 table B.8-1 does not require it), a SHA-256 of its signing input (header.payload).
 * The signature is left out on purpose: it can be re-encoded without the key (an ECDSA signature (r, s) also
 * verifies as (r, n − s); base64url has spare bits in its last character), which would make one token look new.
 */
export function securityTokenReplayKey(token: string, jti: string | undefined): string {
  if (jti !== undefined) return jti;
  const signingInput = token.slice(0, token.lastIndexOf('.'));
  return `sha256:${crypto.createHash('sha256').update(signingInput).digest('base64url')}`;
}

/**
 * Records (issuer, key) and returns true the first time only. One statement (insert … on conflict do nothing):
 * requests racing on the same token, on any instance, cannot both win; the primary key decides.
 */
export async function rememberSecurityToken(db: Db, issuer: string, key: string, keepUntil: Date): Promise<boolean> {
  const inserted = await db('seen_security_tokens').insert({ issuer, jti: key, expires_at: keepUntil }).onConflict(['issuer', 'jti']).ignore().returning('jti');
  return inserted.length === 1;
}

/** Forgets tokens that can no longer pass the exp check (exp + leeway is in the past). */
export async function sweepSeenSecurityTokens(db: Db, batch = 5000): Promise<number> {
  const res = await db.raw(
    'delete from seen_security_tokens where ctid in (select ctid from seen_security_tokens where expires_at < now() limit ?)',
    [batch],
  );
  return res.rowCount as number;
}
