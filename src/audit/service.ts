// Reading the audit trail (`audit list`): newest first, bounded pages. Writes happen inside each use case's service.
import type { Db } from '../db/knex.ts';
import { listAudit, type AuditRow } from './store.ts';

export const MAX_AUDIT_PAGE = 10_000;

export class InvalidAuditQueryError extends Error {}

export async function listAuditEvents(db: Db, query: { limit: number; action?: string }): Promise<AuditRow[]> {
  if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_AUDIT_PAGE)
    throw new InvalidAuditQueryError(`--limit must be 1 to ${MAX_AUDIT_PAGE}`);
  return listAudit(db, query);
}
