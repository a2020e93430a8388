// Replay store for security tokens (each accepted once), shared by every instance through PostgreSQL.
import crypto from 'node:crypto';
import { auditInsertSql, auditValues, type AuditEvent } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';

const REMEMBER = `insert into seen_security_tokens (issuer, jti, expires_at) values ($1, $2, $3) on conflict (issuer, jti) do nothing returning jti`;
// With the grant's success event (issue 16: one round trip for replay check and audit): the event is written exactly
// when the token is accepted, in the same transaction.
const REMEMBER_AND_AUDIT = `with spent as (${REMEMBER}), audited as (${auditInsertSql(4, 'from spent')} returning 1) select jti from spent`;

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
export async function rememberSecurityToken(db: Db, issuer: string, key: string, keepUntil: Date, audit?: AuditEvent): Promise<boolean> {
  const { rows } = audit
    ? await queryPrepared(db, 'seen_security_tokens_remember_audit', REMEMBER_AND_AUDIT, [issuer, key, keepUntil, ...auditValues(audit)])
    : await queryPrepared(db, 'seen_security_tokens_remember', REMEMBER, [issuer, key, keepUntil]);
  return rows.length === 1;
}

/** Forgets tokens that can no longer pass the exp check (exp + leeway is in the past). */
export async function sweepSeenSecurityTokens(db: Db, batch = 5000): Promise<number> {
  const res = await db.raw('delete from seen_security_tokens where ctid in (select ctid from seen_security_tokens where expires_at < now() limit ?)', [batch]);
  return res.rowCount as number;
}
