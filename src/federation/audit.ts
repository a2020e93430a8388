// Audit of inter-domain grants: one event per request, success or refusal, on the home and on the partner side.
import { auditInsertSql, auditValues, recordAudit, type AuditEvent } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';
import { userStandingFromRow, userStandingSql, type UserStandingRow } from '../provisioning/store.ts';
import type { UserStatus } from '../users/store.ts';
import { conditionalStatement } from './replay.ts';

export const AUDIT_ISSUE = 'federation.security_token.issue';
export const AUDIT_ACCEPT = 'federation.security_token.accept';

/** What a grant learns while it runs; whatever is known when it ends goes into the event (never a token). */
export type FederationTrail = {
  action: string;
  grant: string;
  subject?: string;
  partner?: string;
  jti?: string;
  /** The success event was already written, with the spend of the security token (federationSuccessEvent). */
  audited?: boolean;
};

function trailDetails(trail: FederationTrail): Record<string, unknown> {
  return { grant: trail.grant, ...(trail.partner ? { partner: trail.partner } : {}), ...(trail.jti ? { jti: trail.jti } : {}) };
}

/**
 * The success event as withFederationAudit writes it, for a step that writes it itself in the same round trip as its
 * own write (the replay store); the caller then sets `trail.audited`. A failure after that step (nothing else writes;
 * only signing follows) is recorded as a failure event besides it.
 */
export function federationSuccessEvent(actor: string, trail: FederationTrail): AuditEvent {
  return { actor, action: trail.action, subject: trail.subject, result: 'success', details: trailDetails(trail) };
}

type ProtocolError = { error?: string; error_detail?: string; error_description?: string; message?: string };

/** Runs one grant and records its outcome; a refusal keeps the protocol error and its reason (error_detail). */
export async function withFederationAudit(db: Db, actor: string, trail: FederationTrail, run: () => Promise<void>): Promise<void> {
  const details = () => trailDetails(trail);
  try {
    await run();
  } catch (err) {
    const e = err as ProtocolError;
    await recordAudit(db, {
      actor,
      action: trail.action,
      subject: trail.subject,
      result: 'failure',
      details: { ...details(), error: e.error ?? 'server_error', reason: e.error_detail ?? e.error_description ?? e.message ?? String(err) },
    }).catch(() => {}); // the client gets the protocol error even if the audit write fails
    throw err;
  }
  if (!trail.audited) await recordAudit(db, federationSuccessEvent(actor, trail));
}

const auditStatements = new Map<string, { name: string; text: string }>();

/**
 * A VAL user's standing and whether the grant `grantId` is live, read by the statement that also writes `event` when
 * the standing meets `condition` (eligibilityConditionSql, src/users/eligibility.ts): token exchange's read and
 * success event in one round trip (issue 16). Without an event, the read alone (same statement). `audited`: the event
 * was written; when it was not and the caller accepts the user after all, withFederationAudit writes it as before.
 */
export async function readStandingAndAudit(
  db: Db,
  valUserId: string,
  grantId: string | undefined,
  condition: string,
  event: AuditEvent | undefined,
): Promise<{ standing: UserStandingRow; audited: boolean }> {
  const { name, text } = conditionalStatement(
    auditStatements,
    'standing_audit',
    condition,
    (
      when,
    ) => `with standing as (${userStandingSql('$1', '$2::text')}), audited as (${auditInsertSql(4, `from standing where $3::boolean and ${when}`)} returning 1)
      select status, services, grant_live, exists(select 1 from audited) as audited from standing`,
  );
  const { rows } = await queryPrepared<{ status: UserStatus | null; services: string[]; grant_live: boolean; audited: boolean }>(db, name, text, [
    valUserId,
    grantId ?? null,
    event !== undefined,
    ...(event ? auditValues(event) : [null, null, null, null, null]),
  ]);
  const row = rows[0]!;
  return { standing: userStandingFromRow(row), audited: row.audited };
}
