// Replay store for security tokens (jti seen once), shared by every instance through PostgreSQL.
import type { Db } from '../db/knex.ts';

/**
 * Records (issuer, jti) and returns true the first time only. One statement, so two instances racing on the
 * same token cannot both win: the primary key decides.
 */
export async function rememberSecurityToken(db: Db, issuer: string, jti: string, keepUntil: Date): Promise<boolean> {
  const inserted = await db('seen_security_tokens').insert({ issuer, jti, expires_at: keepUntil }).onConflict(['issuer', 'jti']).ignore().returning('jti');
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
