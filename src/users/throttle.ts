// Login throttling per submitted VAL user ID and per source address, shared by all instances: each password check
// is reserved by one atomic statement for all its keys before it runs; one login form accepts one submission at a time.
import crypto from 'node:crypto';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';

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

// One statement reserves a password check on every key of a login, or on none (issue 16: it was a transaction of one
// statement per key). `held` locks the keys' existing rows in key order and sees the latest committed version of each;
// if any is locked, nothing is counted and the refusal is answered from it. Otherwise every key is counted (a new window
// after windowSeconds) and a key that reaches its limit is locked at once, before the password is checked, so parallel
// requests that arrive while it is being checked are refused (issue 10, item 1). The lock doubles with each attempt
// beyond the limit. `last_allowed` carries the per-key decision to RETURNING: it is false only for a key whose row was
// created (and then locked) by other requests after this statement's snapshot, the one case `held` cannot see.
// A key's limit comes from `input` (a CTE is in scope in ON CONFLICT's expressions; `excluded` holds table columns only).
const LIMIT_OF = '(select i.lim from input i where i.key = a.key)';
const RESERVE = `with input as (select k.key, k.lim, k.ord from unnest($1::text[], $2::int[]) with ordinality as k(key, lim, ord)),
  held as (select a.key, a.locked_until from login_attempts a where a.key = any($1::text[]) order by a.key for update),
  refused as (select key, locked_until from held where locked_until > now()),
  counted as (
    insert into login_attempts as a (key, attempts, window_start, locked_until, last_allowed)
    select i.key, 1, now(), case when 1 >= i.lim then now() + make_interval(secs => least($5::double precision, $4::double precision)) end, true
    from input i where not exists (select 1 from refused) order by i.key
    on conflict (key) do update set
      last_allowed = a.locked_until is null or a.locked_until <= now(),
      attempts = case when a.locked_until > now() then a.attempts
                      when a.window_start < now() - make_interval(secs => $3::double precision) then 1
                      else a.attempts + 1 end,
      window_start = case when a.locked_until > now() then a.window_start
                          when a.window_start < now() - make_interval(secs => $3::double precision) then now()
                          else a.window_start end,
      locked_until = case when a.locked_until > now() then a.locked_until
                          when a.window_start < now() - make_interval(secs => $3::double precision) then
                            case when 1 >= ${LIMIT_OF} then now() + make_interval(secs => least($5::double precision, $4::double precision)) end
                          when a.attempts + 1 >= ${LIMIT_OF}
                            then now() + make_interval(secs => least($5::double precision, $4::double precision * power(2, a.attempts + 1 - ${LIMIT_OF})))
                          else a.locked_until end
    returning a.key, a.last_allowed, a.attempts, a.locked_until)
  select i.key, coalesce(c.last_allowed, false) as counted,
    case when r.key is not null or not c.last_allowed
      then cast(greatest(1, ceil(extract(epoch from coalesce(r.locked_until, c.locked_until) - now()))) as integer) end as retry_after,
    case when c.last_allowed and c.attempts >= i.lim then cast(extract(epoch from c.locked_until) as text) end as armed
  from input i left join counted c on c.key = i.key left join refused r on r.key = i.key
  order by i.ord`;

// The release of a successful sign-in's reservations, in one statement; rows locked in key order, as RESERVE does.
const RELEASE = `with target as (select a.key from login_attempts a where a.key = any($1::text[]) order by a.key for update)
  update login_attempts a set
    attempts = greatest(a.attempts - 1, 0),
    window_start = case when a.attempts <= 1 then '-infinity' else a.window_start end,
    locked_until = case when cast(extract(epoch from a.locked_until) as text) = h.armed then null else a.locked_until end
  from unnest($1::text[], $2::text[]) as h(key, armed)
  where a.key = h.key and a.key in (select key from target)`;

/**
 * Runs one statement again when PostgreSQL broke a deadlock by aborting it (40P01): the statement left nothing
 * behind, so running it again is the same request. RESERVE takes its locks in key order, but a row created by another
 * request between its lock phase and its insert phase can still close a cycle.
 */
async function withDeadlockRetry<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if ((err as { code?: unknown }).code !== '40P01' || attempt >= 3) throw err;
    }
  }
}

/**
 * Reserves one password check on every key or on none: refused on any key, no key is counted, so a request refused
 * by the address lock does not use up the user's attempts. One statement (RESERVE).
 */
export async function reserveAttempt(db: Db, keys: { key: string; limit: number }[], policy: ThrottlePolicy): Promise<Reservation> {
  const { rows } = await withDeadlockRetry(() =>
    queryPrepared<{ key: string; counted: boolean; retry_after: number | null; armed: string | null }>(db, 'login_attempts_reserve', RESERVE, [
      keys.map((k) => k.key),
      keys.map((k) => k.limit),
      policy.windowSeconds,
      policy.lockSeconds,
      policy.maxLockSeconds,
    ]),
  );
  const refusals = rows.filter((r) => r.retry_after !== null).map((r) => r.retry_after!);
  if (refusals.length === 0) return { allowed: true, held: rows.map((r) => ({ key: r.key, armedLock: r.armed })) };
  // Only when a key was locked by rows created after RESERVE's snapshot were the other keys counted: give them back.
  const counted = rows.filter((r) => r.counted);
  if (counted.length > 0)
    await releaseAttempt(
      db,
      counted.map((r) => ({ key: r.key, armedLock: r.armed })),
    );
  // The longest lock: trying again any sooner would be refused by it.
  return { allowed: false, retryAfter: Math.max(...refusals) };
}

/**
 * Gives back the reservations of a successful sign-in, and nothing more: the count goes down by one and a lock that
 * this reservation started is lifted, so the key is as if the attempt had not happened. Earlier failures keep
 * counting to the end of their window: a sign-in by the owner does not reset what others tried, so an existing,
 * recently used VAL user ID and an unknown one answer alike (issue 10, item 9).
 */
export async function releaseAttempt(db: Db, held: HeldAttempt[]): Promise<void> {
  if (held.length === 0) return;
  await withDeadlockRetry(() => queryPrepared(db, 'login_attempts_release', RELEASE, [held.map((h) => h.key), held.map((h) => h.armedLock)]));
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
