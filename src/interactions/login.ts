// The password login use case behind the login form: one submission per form at a time, the password check under the
// throttle, the token-eligibility rule, the audit trail and the metric (issue 16: one statement before the password
// check, the eligibility read, one statement after). src/interactions/routes.ts only parses and renders.
import type { Db } from '../db/knex.ts';
import { metrics, type LoginResult } from '../observability/metrics.ts';
import { authenticate } from '../users/authenticate.ts';
import { tokenEligibility, type Eligibility } from '../users/eligibility.ts';
import { finishPasswordCheck, idPseudonym, releaseSubmission, type ThrottlePolicy } from '../users/throttle.ts';

export type LoginDeps = {
  db: Db;
  /** Keyed hash for submitted VAL user IDs in throttle keys and in audit rows of unknown IDs (Secrets.loginIdKey). */
  loginIdKey: Buffer;
  throttle?: ThrottlePolicy;
};

/** One submitted login form. `valUserId` is canonical (users/ids.ts canonicalId) and the password non-empty. */
export type LoginAttempt = { valUserId: string; password: string; ip: string; clientId: string; interactionUid: string };

export type LoginOutcome =
  /** Signed in: hand the VAL user to oidc-provider. */
  | { kind: 'signed_in'; valUserId: string }
  /** Wrong ID or password (or a disabled user): one generic answer, the form again. */
  | { kind: 'invalid' }
  /** Another submission of the same login form is being checked: refused unchecked. */
  | { kind: 'busy' }
  /** Too many failures for this ID or address. */
  | { kind: 'throttled'; retryAfter: number }
  /** The right password, but the VAL user may get no tokens: the authorization request ends with this error. */
  | { kind: 'refused'; error: 'access_denied'; description: string };

/**
 * Checks the password of one submission of login form `interactionUid` (reserved against the throttle), then token
 * eligibility; audits and counts the outcome. A second POST of the same form while the first is being checked (on any
 * worker) is `busy`, refused unchecked: it would otherwise be a free parallel guess. The form's marker is held until
 * the check's outcome is audited, in the statement that writes the audit event (finishPasswordCheck).
 */
export async function logIn(deps: LoginDeps, attempt: LoginAttempt): Promise<LoginOutcome> {
  const { db, loginIdKey } = deps;
  const checked = await authenticate(
    db,
    { valUserId: attempt.valUserId, password: attempt.password, ip: attempt.ip, interactionUid: attempt.interactionUid },
    { idKey: loginIdKey, policy: deps.throttle },
  );
  if (!checked) {
    metrics.login('throttled');
    return { kind: 'busy' };
  }
  const { result, hold } = checked;
  let finished = false;
  try {
    // Failures on IDs that name no user are audited under a keyed hash: such an "ID" is often a password typed into
    // the wrong field (issue 10, item 9). Existing IDs are audited as themselves.
    const actor = result.ok || result.known ? attempt.valUserId : `unknown:${idPseudonym(loginIdKey, attempt.valUserId).slice(0, 32)}`;
    const finish = async (outcome: 'success' | 'failure', reason?: LoginResult) => {
      await finishPasswordCheck(db, hold.submission, hold.release, {
        actor,
        action: 'login',
        subject: attempt.clientId,
        result: outcome,
        details: reason ? { reason } : {},
      });
      finished = true;
      metrics.login(reason ?? 'success');
    };

    if (!result.ok) {
      await finish('failure', result.reason);
      return result.reason === 'throttled' ? { kind: 'throttled', retryAfter: result.retryAfter } : { kind: 'invalid' };
    }

    const refusal = loginRefusal(await tokenEligibility(db, result.valUserId));
    if (refusal) {
      await finish('failure', refusal.reason);
      return { kind: 'refused', error: 'access_denied', description: refusal.description };
    }
    await finish('success');
    return { kind: 'signed_in', valUserId: result.valUserId };
  } finally {
    // Only when something failed before the outcome was audited: the form must not stay blocked until the marker lapses.
    if (!finished) await releaseSubmission(db, hold.submission);
  }
}

/**
 * The token eligibility (src/users/eligibility.ts) of a VAL user who gave the right password, as login answers it:
 * nothing (sign in), or access_denied with the reason for the audit trail and the metric. DESIGN: a user provisioned
 * for no VAL service gets access_denied, not empty tokens.
 */
export function loginRefusal(answer: Eligibility): { reason: LoginResult; description: string } | undefined {
  switch (answer.kind) {
    case 'ok':
      return undefined;
    case 'no_service':
      return { reason: 'no_val_service', description: 'the VAL user is not provisioned for any VAL service' };
    // authenticate has just found the user active: only a `user disable` or `user delete` in between leads here, and
    // a moment earlier authenticate would have answered it as invalid credentials.
    case 'disabled':
    case 'unknown':
    case 'visitor':
    case 'grant_revoked':
      return { reason: 'invalid_credentials', description: 'the VAL user is unknown or disabled' };
  }
}
