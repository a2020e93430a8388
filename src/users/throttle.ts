// Login throttling per submitted VAL user ID and per source address, shared by all instances: each password check
// is reserved by one atomic statement per key before it runs; one login form accepts one submission at a time.
import crypto from 'node:crypto';
import type { Db } from '../db/knex.ts';

export type ThrottlePolicy = Readonly<{
  /** Attempts counted within this many seconds of the first one. */
  windowSeconds: number;
  /** Password checks per VAL user ID before a lock. */
  userLimit: number;
  /** Password checks per source address before a lock (higher: many users may share a NAT). */
  addressLimit: number;
  /** First lock length; doubles with each further attempt, up to maxLockSeconds. */
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

/**
 * Keyed hash (HMAC-SHA256, hex) of a submitted VAL user ID: what throttle keys and audit rows of unknown IDs hold,
 * so a password typed into the user ID field is never stored in clear (OWASP Logging Cheat Sheet: no passwords).
 */
export function idPseudonym(key: Buffer, valUserId: string): string {
  return crypto.createHmac('sha256', key).update(valUserId, 'utf8').digest('hex');
}

export const userKey = (idKey: Buffer, valUserId: string) => `user:${idPseudonym(idKey, valUserId)}`;
export const addressKey = (ip: string) => `ip:${ip}`;

/** A reserved password check on one key; `armedLock` is the lock this reservation started, if it reached the limit. */
export type HeldAttempt = { key: string; armedLock: string | null };

export type Reservation = { allowed: true; held: HeldAttempt[] } | { allowed: false; retryAfter: number };

// One statement decides and counts: a locked key is refused and left as it is; otherwise the attempt is counted
// (a new window after windowSeconds) and, when it reaches the limit, locks the key at once, before the password is
// checked, so parallel requests that arrive while it is being checked are refused (issue 10, item 1). The lock
// doubles with each attempt beyond the limit. `last_allowed` carries the decision to RETURNING.
const RESERVE = `
  insert into login_attempts as a (key, attempts, window_start, locked_until, last_allowed)
  values (:key, 1, now(), case when 1 >= :limit then now() + make_interval(secs => least(cast(:maxLock as double precision), :lock)) end, true)
  on conflict (key) do update set
    last_allowed = a.locked_until is null or a.locked_until <= now(),
    attempts = case when a.locked_until > now() then a.attempts
                    when a.window_start < now() - make_interval(secs => :window) then 1
                    else a.attempts + 1 end,
    window_start = case when a.locked_until > now() then a.window_start
                        when a.window_start < now() - make_interval(secs => :window) then now()
                        else a.window_start end,
    locked_until = case when a.locked_until > now() then a.locked_until
                        when a.window_start < now() - make_interval(secs => :window) then
                          case when 1 >= :limit then now() + make_interval(secs => least(cast(:maxLock as double precision), :lock)) end
                        when a.attempts + 1 >= :limit
                          then now() + make_interval(secs => least(:maxLock, :lock * power(2, a.attempts + 1 - :limit)))
                        else a.locked_until end
  returning last_allowed as allowed,
    cast(greatest(1, ceil(extract(epoch from locked_until - now()))) as integer) as retry_after,
    case when last_allowed and attempts >= :limit then cast(extract(epoch from locked_until) as text) end as armed`;

class Refused extends Error {
  readonly retryAfter: number;
  constructor(retryAfter: number) {
    super('login attempt refused');
    this.retryAfter = retryAfter;
  }
}

/**
 * Reserves one password check on every key (in order) or on none: refused on any key, the transaction rolls back
 * the reservations already made, so a request refused by the address lock does not use up the user's attempts.
 */
export async function reserveAttempt(db: Db, keys: { key: string; limit: number }[], policy: ThrottlePolicy): Promise<Reservation> {
  try {
    const held = await db.transaction(async (trx) => {
      const taken: HeldAttempt[] = [];
      for (const { key, limit } of keys) {
        const { rows } = await trx.raw(RESERVE, { key, limit, window: policy.windowSeconds, lock: policy.lockSeconds, maxLock: policy.maxLockSeconds });
        const row = rows[0] as { allowed: boolean; retry_after: number; armed: string | null };
        if (!row.allowed) throw new Refused(row.retry_after);
        taken.push({ key, armedLock: row.armed });
      }
      return taken;
    });
    return { allowed: true, held };
  } catch (err) {
    if (err instanceof Refused) return { allowed: false, retryAfter: err.retryAfter };
    throw err;
  }
}

/**
 * Gives back the reservations of a successful sign-in, and nothing more: the count goes down by one and a lock that
 * this reservation started is lifted, so the key is as if the attempt had not happened. Earlier failures keep
 * counting to the end of their window: a sign-in by the owner does not reset what others tried, so an existing,
 * recently used VAL user ID and an unknown one answer alike (issue 10, item 9).
 */
export async function releaseAttempt(db: Db, held: HeldAttempt[]): Promise<void> {
  for (const { key, armedLock } of held) {
    await db.raw(
      `update login_attempts set
         attempts = greatest(attempts - 1, 0),
         window_start = case when attempts <= 1 then '-infinity' else window_start end,
         locked_until = case when cast(extract(epoch from locked_until) as text) = :armed then null else locked_until end
       where key = :key`,
      { key, armed: armedLock },
    );
  }
}

/** Seconds a marker of an unfinished submission lasts (a worker that dies mid-check must not block the form for good). */
const SUBMISSION_SECONDS = 60;

export type Submission = { uidHash: string; token: string };

/**
 * Marks the login interaction `uid` as being submitted; undefined when another submission of it is in flight (on
 * any worker). The uid is stored as a keyed hash: it is the interaction cookie's value.
 */
export async function claimSubmission(db: Db, idKey: Buffer, uid: string): Promise<Submission | undefined> {
  const uidHash = idPseudonym(idKey, `interaction:${uid}`);
  const token = crypto.randomBytes(16).toString('base64url');
  const { rows } = await db.raw(
    `insert into login_submissions as s (uid_hash, token, expires_at) values (?, ?, now() + make_interval(secs => ?))
     on conflict (uid_hash) do update set token = excluded.token, expires_at = excluded.expires_at where s.expires_at <= now()
     returning token`,
    [uidHash, token, SUBMISSION_SECONDS],
  );
  return rows.length === 1 ? { uidHash, token } : undefined;
}

/** Ends a submission; only its own claim (by token), not a later one that took over a lapsed marker. */
export async function releaseSubmission(db: Db, submission: Submission): Promise<void> {
  await db('login_submissions').where({ uid_hash: submission.uidHash, token: submission.token }).delete();
}

export async function sweepLoginAttempts(db: Db, policy: ThrottlePolicy): Promise<void> {
  await db('login_attempts')
    .where('window_start', '<', db.raw('now() - make_interval(secs => ?)', [policy.windowSeconds + policy.maxLockSeconds]))
    .andWhere((q) => q.whereNull('locked_until').orWhere('locked_until', '<', db.fn.now()))
    .delete();
  await db('login_submissions').where('expires_at', '<', db.fn.now()).delete();
}
