// Checks a VAL user ID + password: one path and one answer for unknown users, wrong passwords and disabled users.
import type { Db } from '../db/knex.ts';
import { needsRehash } from './hash-formats.ts';
import { burnVerification, hashPassword, MAX_PASSWORD_LENGTH, verifyPassword } from './passwords.ts';
import { findUser, replacePasswordHash } from './store.ts';
import { addressKey, DEFAULT_THROTTLE, releaseAttempt, reserveAttempt, userKey, type ThrottlePolicy } from './throttle.ts';

/** `known` (does the ID name a user?) is for the audit trail only and must never shape the answer to the client. */
export type AuthResult =
  | { ok: true; valUserId: string }
  | { ok: false; reason: 'invalid_credentials'; known: boolean }
  | { ok: false; reason: 'throttled'; retryAfter: number; known: boolean };

export type AuthOptions = {
  /** Key of the keyed hash that stands for the VAL user ID in throttle keys (Secrets.loginIdKey). */
  idKey: Buffer;
  policy?: ThrottlePolicy;
};

/** `valUserId` must already be canonical (users/ids.ts canonicalId): it is compared, hashed and stored as given. */
export async function authenticate(db: Db, input: { valUserId: string; password: string; ip: string }, options: AuthOptions): Promise<AuthResult> {
  const policy = options.policy ?? DEFAULT_THROTTLE;
  // Reserved before the password is checked, in one statement per key: however many requests run in parallel, on
  // however many workers, at most `limit` of them reach the verification (RFC 9700 §4.16; issue 10, item 1).
  const reservation = await reserveAttempt(
    db,
    [
      { key: userKey(options.idKey, input.valUserId), limit: policy.userLimit },
      { key: addressKey(input.ip), limit: policy.addressLimit },
    ],
    policy,
  );
  if (!reservation.allowed) {
    return { ok: false, reason: 'throttled', retryAfter: reservation.retryAfter, known: (await findUser(db, input.valUserId)) !== undefined };
  }

  const user = await findUser(db, input.valUserId);
  const ok =
    user?.password_hash && input.password.length <= MAX_PASSWORD_LENGTH
      ? await verifyPassword(user.password_hash, input.password)
      : await burnVerification(input.password.slice(0, MAX_PASSWORD_LENGTH));

  if (ok && user?.status === 'active') {
    // Only this attempt's own reservation is given back: earlier failures keep counting to the end of their window.
    await releaseAttempt(db, reservation.held);
    // An imported bcrypt/PBKDF2 hash, or argon2 weaker than ours, becomes argon2id now that we hold the password.
    if (needsRehash(user.password_hash!)) await replacePasswordHash(db, user.val_user_id, user.password_hash!, await hashPassword(input.password));
    return { ok: true, valUserId: user.val_user_id };
  }
  // A failure keeps its reservation: it is the counted failure (and the lock it may have started stands).
  return { ok: false, reason: 'invalid_credentials', known: user !== undefined };
}
