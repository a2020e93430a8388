// The password login use case behind the login form: one submission per form at a time, the password check under the
// throttle, the token-eligibility rule, the audit trail and the metric (issue 16: one statement before the password
// check, one after it, which for a correct password also reads the eligibility). src/interactions/routes.ts only
// parses and renders.
import type { AuditEvent } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { metrics, type LoginResult } from '../observability/metrics.ts';
import { authenticate } from '../users/authenticate.ts';
import { eligibilityConditionSql, eligibilityOf, type Eligibility } from '../users/eligibility.ts';
import { finishPasswordCheck, finishSignIn, idPseudonym, releaseSubmission, type ThrottlePolicy } from '../users/throttle.ts';

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
 * the check's outcome is audited, in the statement that writes the audit event (finishPasswordCheck, or finishSignIn
 * for a correct password).
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
    const event = (reason?: LoginResult): AuditEvent => ({
      actor,
      action: 'login',
      subject: attempt.clientId,
      result: reason ? 'failure' : 'success',
      details: reason ? { reason } : {},
    });

    if (!result.ok) {
      await finishPasswordCheck(db, hold.submission, hold.release, event(result.reason));
      finished = true;
      metrics.login(result.reason);
      return result.reason === 'throttled' ? { kind: 'throttled', retryAfter: result.retryAfter } : { kind: 'invalid' };
    }

    // The eligibility read goes with the release, the submission's end and the audit event (issue 16): the statement
    // writes the event of the outcome its standing leads to (SIGN_IN_OUTCOMES), the decision is eligibilityOf's here.
    const { standing, written } = await finishSignIn(
      db,
      hold.submission,
      hold.release,
      result.valUserId,
      SIGN_IN_OUTCOMES.map(({ reason, when }) => ({ when, event: event(reason) })),
    );
    finished = true;
    const refusal = loginRefusal(eligibilityOf(standing));
    // Equal by construction (the conditions are derived from loginRefusal and eligibilityOf): a difference is a bug
    // in that derivation, and the attempt must not be answered against its audit event.
    if (SIGN_IN_OUTCOMES[written]?.reason !== refusal?.reason) throw new Error('login: the audit event written does not match the decision');
    metrics.login(refusal?.reason ?? 'success');
    if (refusal) return { kind: 'refused', error: 'access_denied', description: refusal.description };
    return { kind: 'signed_in', valUserId: result.valUserId };
  } finally {
    // Only when something failed before the outcome was audited: the form must not stay blocked until the marker lapses.
    if (!finished) await releaseSubmission(db, hold.submission);
  }
}

// Every result a login can be counted and audited as (LoginResult), for SIGN_IN_OUTCOMES.
const LOGIN_RESULTS = { success: true, invalid_credentials: true, throttled: true, no_val_service: true } satisfies Record<LoginResult, true>;

/**
 * The outcomes of a correct password (undefined: signed in; otherwise loginRefusal's reason), each with the standings
 * that lead to it as an SQL condition (eligibilityConditionSql): built by asking loginRefusal about eligibilityOf's
 * answers, so the statement that writes the audit event chooses it by the one rule. Outcomes no standing leads to
 * are left out; together they cover every standing.
 */
export const SIGN_IN_OUTCOMES: { reason: LoginResult | undefined; when: string }[] = (Object.keys(LOGIN_RESULTS) as LoginResult[])
  .map((result) => {
    const reason = result === 'success' ? undefined : result;
    return { reason, when: eligibilityConditionSql((answer) => loginRefusal(answer)?.reason === reason, false) };
  })
  .filter((outcome) => outcome.when !== 'false');

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
