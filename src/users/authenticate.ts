// Checks a VAL user ID + password: one path and one answer for unknown users, wrong passwords and disabled users.
import type { Db } from '../db/knex.ts';
import { needsRehash } from './hash-formats.ts';
import { burnVerification, hashPassword, MAX_PASSWORD_LENGTH, verifyPassword } from './passwords.ts';
import { replacePasswordHash } from './store.ts';
import {
  addressKey,
  beginPasswordCheck,
  DEFAULT_THROTTLE,
  releaseSubmission,
  userKey,
  type HeldAttempt,
  type Submission,
  type ThrottlePolicy,
} from './throttle.ts';

/** `known` (does the ID name a user?) is for the audit trail only and must never shape the answer to the client. */
export type AuthResult =
  | { ok: true; valUserId: string }
  | { ok: false; reason: 'invalid_credentials'; known: boolean }
  | { ok: false; reason: 'throttled'; retryAfter: number; known: boolean };

/**
 * What a checked submission still holds: its marker, and for a successful sign-in the reservations to give back. Both
 * end in finishPasswordCheck (src/users/throttle.ts; finishSignIn for a correct password) with the attempt's audit
 * event, or releaseSubmission on an error.
 */
export type CheckHold = { submission: Submission; release: HeldAttempt[] };

export type AuthOptions = {
  /** Key of the keyed hash that stands for the VAL user ID in throttle keys (Secrets.loginIdKey). */
  idKey: Buffer;
  policy?: ThrottlePolicy;
};

/**
 * One submission of login form `interactionUid`: undefined when another submission of the same form is being checked
 * (refused unchecked, nothing counted). `valUserId` must already be canonical (users/ids.ts canonicalId): it is
 * compared, hashed and stored as given.
 */
export async function authenticate(
  db: Db,
  input: { valUserId: string; password: string; ip: string; interactionUid: string },
  options: AuthOptions,
): Promise<{ result: AuthResult; hold: CheckHold } | undefined> {
  const policy = options.policy ?? DEFAULT_THROTTLE;
  // Reserved before the password is checked, in the statement that claims the form's submission and reads the
  // credentials: however many requests run in parallel, on however many workers, at most `limit` of them reach the
  // verification (RFC 9700 §4.16; issue 10, item 1), and one at a time per form.
  const start = await beginPasswordCheck(
    db,
    {
      idKey: options.idKey,
      interactionUid: input.interactionUid,
      keys: [
        { key: userKey(options.idKey, input.valUserId), limit: policy.userLimit },
        { key: addressKey(input.ip), limit: policy.addressLimit },
      ],
      valUserId: input.valUserId,
    },
    policy,
  );
  if (start.kind === 'busy') return undefined;
  if (start.kind === 'throttled') {
    return {
      result: { ok: false, reason: 'throttled', retryAfter: start.retryAfter, known: start.known },
      hold: { submission: start.submission, release: [] },
    };
  }

  try {
    const user = start.credentials;
    const ok =
      user?.password_hash && input.password.length <= MAX_PASSWORD_LENGTH
        ? await verifyPassword(user.password_hash, input.password)
        : await burnVerification(input.password.slice(0, MAX_PASSWORD_LENGTH));

    if (ok && user?.status === 'active') {
      // An imported bcrypt/PBKDF2 hash, or argon2 weaker than ours, becomes argon2id now that we hold the password.
      if (needsRehash(user.password_hash!)) await replacePasswordHash(db, user.val_user_id, user.password_hash!, await hashPassword(input.password));
      // Only this attempt's own reservation is given back: earlier failures keep counting to the end of their window.
      return { result: { ok: true, valUserId: user.val_user_id }, hold: { submission: start.submission, release: start.held } };
    }
    // A failure keeps its reservation: it is the counted failure (and the lock it may have started stands).
    return { result: { ok: false, reason: 'invalid_credentials', known: user !== undefined }, hold: { submission: start.submission, release: [] } };
  } catch (err) {
    await releaseSubmission(db, start.submission);
    throw err;
  }
}
