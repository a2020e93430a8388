// Failed-login throttling per submitted VAL user ID and per source address, shared by all instances.
import type { Db } from '../db/knex.ts';

export type ThrottlePolicy = Readonly<{
  /** Failures counted within this many seconds of the first one. */
  windowSeconds: number;
  /** Failures per VAL user ID before a lock. */
  userLimit: number;
  /** Failures per source address before a lock (higher: many users may share a NAT). */
  addressLimit: number;
  /** First lock length; doubles with each further failure, up to maxLockSeconds. */
  lockSeconds: number;
  maxLockSeconds: number;
}>;

export const DEFAULT_THROTTLE: ThrottlePolicy = Object.freeze({
  windowSeconds: 900,
  userLimit: 5,
  addressLimit: 50,
  lockSeconds: 30,
  maxLockSeconds: 900,
});

export const userKey = (valUserId: string) => `user:${valUserId}`;
export const addressKey = (ip: string) => `ip:${ip}`;

/** Seconds until the longest of the given locks ends, or 0 when none is locked. */
export async function lockedFor(db: Db, keys: string[]): Promise<number> {
  const row = await db('login_attempts')
    .whereIn('key', keys)
    .andWhere('locked_until', '>', db.fn.now())
    .select(db.raw('ceil(extract(epoch from max(locked_until) - now()))::int as seconds'))
    .first();
  return (row?.seconds as number | null) ?? 0;
}

export async function recordFailure(db: Db, key: string, limit: number, policy: ThrottlePolicy): Promise<void> {
  // One statement per failure: counts restart after the window; past the limit the lock doubles each time.
  await db.raw(
    `insert into login_attempts as a (key, failures, window_start) values (?, 1, now())
     on conflict (key) do update set
       failures = case when a.window_start < now() - make_interval(secs => ?) then 1 else a.failures + 1 end,
       window_start = case when a.window_start < now() - make_interval(secs => ?) then now() else a.window_start end,
       locked_until = case
         when a.window_start >= now() - make_interval(secs => ?) and a.failures + 1 >= ?
         then now() + make_interval(secs => least(?, ? * power(2, a.failures + 1 - ?)))
         else a.locked_until end`,
    [key, policy.windowSeconds, policy.windowSeconds, policy.windowSeconds, limit, policy.maxLockSeconds, policy.lockSeconds, limit],
  );
}

export async function clearFailures(db: Db, key: string): Promise<void> {
  await db('login_attempts').where({ key }).delete();
}

export async function sweepLoginAttempts(db: Db, policy: ThrottlePolicy): Promise<void> {
  await db('login_attempts')
    .where('window_start', '<', db.raw('now() - make_interval(secs => ?)', [policy.windowSeconds + policy.maxLockSeconds]))
    .andWhere((q) => q.whereNull('locked_until').orWhere('locked_until', '<', db.fn.now()))
    .delete();
}
