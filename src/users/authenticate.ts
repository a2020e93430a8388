// Checks a VAL user ID + password: one path and one answer for unknown users, wrong passwords and disabled users.
import type { Db } from '../db/knex.ts';
import { needsRehash } from './hash-formats.ts';
import { burnVerification, hashPassword, MAX_PASSWORD_LENGTH, verifyPassword } from './passwords.ts';
import { findUser, replacePasswordHash } from './store.ts';
import { addressKey, clearFailures, DEFAULT_THROTTLE, lockedFor, recordFailure, userKey, type ThrottlePolicy } from './throttle.ts';

export type AuthResult =
  | { ok: true; valUserId: string }
  | { ok: false; reason: 'invalid_credentials' }
  | { ok: false; reason: 'throttled'; retryAfter: number };

export async function authenticate(
  db: Db,
  input: { valUserId: string; password: string; ip: string },
  policy: ThrottlePolicy = DEFAULT_THROTTLE,
): Promise<AuthResult> {
  const uKey = userKey(input.valUserId);
  const aKey = addressKey(input.ip);
  const retryAfter = await lockedFor(db, [uKey, aKey]);
  if (retryAfter > 0) return { ok: false, reason: 'throttled', retryAfter };

  const user = input.password.length <= MAX_PASSWORD_LENGTH ? await findUser(db, input.valUserId) : undefined;
  const ok =
    user?.password_hash && input.password.length <= MAX_PASSWORD_LENGTH
      ? await verifyPassword(user.password_hash, input.password)
      : await burnVerification(input.password.slice(0, MAX_PASSWORD_LENGTH));

  if (ok && user?.status === 'active') {
    await clearFailures(db, uKey);
    // An imported bcrypt/PBKDF2 hash, or argon2 weaker than ours, becomes argon2id now that we hold the password.
    if (needsRehash(user.password_hash!)) await replacePasswordHash(db, user.val_user_id, user.password_hash!, await hashPassword(input.password));
    return { ok: true, valUserId: user.val_user_id };
  }
  await Promise.all([
    recordFailure(db, uKey, policy.userLimit, policy),
    recordFailure(db, aKey, policy.addressLimit, policy),
  ]);
  return { ok: false, reason: 'invalid_credentials' };
}
