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

/**
 * The insert of one audit event as a statement of its own or part of a larger one, for a write that must record its
 * event in the same round trip (the replay store of partner security tokens, src/federation/replay.ts): its values
 * are the parameters $first … $first+4, in the order auditValues gives them; `from` (e.g. 'from spent') makes the row
 * depend on another part of the statement.
 */
export function auditInsertSql(first: number, from = ''): string {
  const p = (i: number) => `$${first + i}`;
  return `insert into audit_events (actor, action, subject, result, details) select ${p(0)}::text, ${p(1)}::text, ${p(2)}::text, ${p(3)}::text, ${p(4)}::jsonb ${from}`;
}

export function auditValues(event: AuditEvent): unknown[] {
  return [event.actor, event.action, event.subject ?? null, event.result, JSON.stringify(event.details ?? {})];
}

/**
 * The insert of one audit event out of several candidates, as part of a larger statement that chooses which: the
 * candidates' values are the array parameters $first … $first+4 (auditChoiceValues), `index` an SQL expression giving
 * the 1-based index of the one to write, `from` what it is read from (e.g. 'from choice'); no row when it is null.
 */
export function auditChoiceInsertSql(first: number, index: string, from: string): string {
  const p = (i: number) => `($${first + i}::text[])[${index}]`;
  return `insert into audit_events (actor, action, subject, result, details) select ${p(0)}, ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}::jsonb ${from} where ${index} is not null`;
}

/** The parameters of auditChoiceInsertSql: one array per column, the candidates in order. */
export function auditChoiceValues(events: AuditEvent[]): unknown[] {
  const values = events.map(auditValues);
  return [0, 1, 2, 3, 4].map((column) => values.map((v) => v[column]));
}

export async function listAudit(db: Db, filter: { limit: number; action?: string }): Promise<AuditRow[]> {
  const q = db('audit_events').select('*').orderBy('id', 'desc').limit(filter.limit);
  if (filter.action) q.where('action', filter.action);
  return q;
}
