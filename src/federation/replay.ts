// Replay store for security tokens (each accepted once), shared by every instance through PostgreSQL.
import crypto from 'node:crypto';
import { auditInsertSql, auditValues, type AuditEvent } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';
import { userStandingFromRow, userStandingSql, type UserStandingRow } from '../provisioning/store.ts';
import type { UserStatus } from '../users/store.ts';

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

/**
 * A statement built around a condition, named once per text (a prepared name must stand for exactly one text):
 * the conditions differ by grant and partner policy.
 */
export function conditionalStatement(
  cache: Map<string, { name: string; text: string }>,
  prefix: string,
  condition: string,
  build: (condition: string) => string,
) {
  let statement = cache.get(condition);
  if (!statement) {
    const text = build(condition);
    statement = { name: `${prefix}_${crypto.createHash('sha256').update(text).digest('base64url').slice(0, 16)}`, text };
    cache.set(condition, statement);
  }
  return statement;
}

export type StandingAndSpend = {
  standing: UserStandingRow;
  /** The standing met the condition, so the spend was tried. */
  tried: boolean;
  /** The spend was tried and the token was seen here for the first time (its event written with it). */
  spent: boolean;
};

const spendStatements = new Map<string, { name: string; text: string }>();

/**
 * The VAL user's standing, and, when it meets `condition` (eligibilityConditionSql, src/users/eligibility.ts), the
 * spend of the token with its success event, in one statement (issue 16: the JWT-bearer grant's one round trip).
 * A standing that does not meet it spends nothing and writes nothing: the caller decides on the standing and, if it
 * accepts the user after all, spends with rememberSecurityToken as before.
 */
export async function readStandingAndSpend(
  db: Db,
  valUserId: string,
  condition: string,
  token: { issuer: string; key: string; keepUntil: Date },
  audit: AuditEvent,
): Promise<StandingAndSpend> {
  const { name, text } = conditionalStatement(spendStatements, 'standing_spend_audit', condition, (when) => {
    const remember = `insert into seen_security_tokens (issuer, jti, expires_at) select $2::text, $3::text, $4::timestamptz from standing where ${when} on conflict (issuer, jti) do nothing returning jti`;
    return `with standing as (${userStandingSql('$1', 'null::text')}), spent as (${remember}), audited as (${auditInsertSql(5, 'from spent')} returning 1)
      select status, services, grant_live, ${when} as tried, exists(select 1 from spent) as spent from standing`;
  });
  const { rows } = await queryPrepared<{ status: UserStatus | null; services: string[]; grant_live: boolean; tried: boolean; spent: boolean }>(db, name, text, [
    valUserId,
    token.issuer,
    token.key,
    token.keepUntil,
    ...auditValues(audit),
  ]);
  const row = rows[0]!;
  return { standing: userStandingFromRow(row), tried: row.tried, spent: row.spent };
}

/** Forgets tokens that can no longer pass the exp check (exp + leeway is in the past). */
export async function sweepSeenSecurityTokens(db: Db, batch = 5000): Promise<number> {
  const res = await db.raw('delete from seen_security_tokens where ctid in (select ctid from seen_security_tokens where expires_at < now() limit ?)', [batch]);
  return res.rowCount as number;
}
