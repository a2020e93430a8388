// Audit of inter-domain grants: one event per request, success or refusal, on the home and on the partner side.
import { recordAudit, type AuditEvent } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';

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
