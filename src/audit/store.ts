// Audit trail of provisioning, admin and login events. Callers pass identifiers and counts, never secrets.
import type { Db } from '../db/knex.ts';

export type AuditEvent = {
  actor: string;
  action: string;
  subject?: string;
  result: 'success' | 'failure';
  details?: Record<string, unknown>;
};

export type AuditRow = AuditEvent & { id: number; at: Date };

export async function recordAudit(db: Db, event: AuditEvent): Promise<void> {
  await db('audit_events').insert({
    actor: event.actor,
    action: event.action,
    subject: event.subject ?? null,
    result: event.result,
    details: JSON.stringify(event.details ?? {}),
  });
}

export async function listAudit(db: Db, filter: { limit: number; action?: string }): Promise<AuditRow[]> {
  const q = db('audit_events').select('*').orderBy('id', 'desc').limit(filter.limit);
  if (filter.action) q.where('action', filter.action);
  return q;
}
