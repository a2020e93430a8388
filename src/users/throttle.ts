// Login throttling per submitted VAL user ID and per source address, shared by all instances: each password check
// is reserved by one atomic statement for all its keys before it runs; one login form accepts one submission at a time.
// The login form's statements are built here, the owner of login_attempts and login_submissions, from the fragments of
// the other tables' owners (val_users: src/users/store.ts, val_service_users: src/provisioning/store.ts, audit_events:
// src/audit/store.ts).
import crypto from 'node:crypto';
import type { Db } from '../db/knex.ts';
import { auditChoiceInsertSql, auditChoiceValues, auditInsertSql, auditValues, type AuditEvent } from '../audit/store.ts';
import { queryPrepared } from '../db/prepared.ts';
import { userStandingFromRow, userStandingSql, type UserStandingRow } from '../provisioning/store.ts';
import { userCredentialsSql, type UserRow, type UserStatus } from './store.ts';

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

// The reservation of a password check on every key of a login, or on none (issue 16: it was a transaction of one
// statement per key), as CTEs of the login form's first statement (BEGIN_CHECK). `gate` is a condition without
// columns (the submission's claim): when false, no row is locked and nothing counted. `held` locks the keys' existing
// rows in key order and sees the latest committed version of each; if any is locked, nothing is counted and the
// refusal is answered from it. Otherwise every key is counted (a new window after windowSeconds) and a key that reaches
// its limit is locked at once, before the password is checked, so parallel requests that arrive while it is being
// checked are refused (issue 10, item 1). The lock doubles with each attempt beyond the limit. `last_allowed` carries
// the per-key decision to RETURNING: it is false only for a key whose row was created (and then locked) by other
// requests after this statement's snapshot, the one case `held` cannot see. A key's limit comes from `input` (a CTE
// is in scope in ON CONFLICT's expressions; `excluded` holds table columns only). Keys, limits and the policy are
// $1 … $5.
const LIMIT_OF = '(select i.lim from input i where i.key = a.key)';
const reservationCtes = (
  gate: string,
) => `input as (select k.key, k.lim, k.ord from unnest($1::text[], $2::int[]) with ordinality as k(key, lim, ord) where ${gate}),
  held as (select a.key, a.locked_until from login_attempts a where a.key = any($1::text[]) and ${gate} order by a.key for update),
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
    returning a.key, a.last_allowed, a.attempts, a.locked_until),
  decided as (
    select i.key, i.ord, coalesce(c.last_allowed, false) as counted,
      case when r.key is not null or not c.last_allowed
        then cast(greatest(1, ceil(extract(epoch from coalesce(r.locked_until, c.locked_until) - now()))) as integer) end as retry_after,
      case when c.last_allowed and c.attempts >= i.lim then cast(extract(epoch from c.locked_until) as text) end as armed
    from input i left join counted c on c.key = i.key left join refused r on r.key = i.key)`;

// The claim of the login form's submission marker ($6 the keyed hash of the interaction uid, $7 this claim's token,
// $8 its lifetime): a row only when no other submission of the form holds a live marker.
const CLAIM = `insert into login_submissions as s (uid_hash, token, expires_at) values ($6::text, $7::text, now() + make_interval(secs => $8::double precision))
    on conflict (uid_hash) do update set token = excluded.token, expires_at = excluded.expires_at where s.expires_at <= now()
    returning token`;

// The login form's first statement (issue 16: three round trips before the password check become one): the claim of
// the form's submission, then, only if claimed, the reservation on every key, and the submitted ID's credentials
// (userCredentialsSql, src/users/store.ts), whose hash, status and ID leave the database only for an attempt that is
// claimed and allowed on every key. The claim gates the reservation, so a second POST of the same form is refused
// unchecked and counts nothing; an unknown ID runs the same statement as a known one ($9 its ID).
const BEGIN_CHECK = `with claim as (${CLAIM}),
  ${reservationCtes('exists (select 1 from claim)')},
  credentials as (${userCredentialsSql('$9::text')}),
  verdict as (select exists (select 1 from claim) as claimed,
    exists (select 1 from claim) and not exists (select 1 from decided where retry_after is not null) as allowed)
  select v.claimed, v.allowed,
    array(select d.key from decided d order by d.ord) as keys,
    array(select d.counted from decided d order by d.ord) as counted,
    array(select d.retry_after from decided d order by d.ord) as retry_after,
    array(select d.armed from decided d order by d.ord) as armed,
    exists (select 1 from credentials) as known,
    (select c.val_user_id from credentials c where v.allowed) as val_user_id,
    (select c.password_hash from credentials c where v.allowed) as password_hash,
    (select c.status from credentials c where v.allowed) as status
  from verdict v`;

// The release of a successful sign-in's reservations ($1 keys, $2 the locks they armed), rows locked in key order as
// the reservation locks them; as CTEs of FINISH_CHECK, or a statement of its own (RELEASE).
const RELEASE_CTES = `target as (select a.key from login_attempts a where a.key = any($1::text[]) order by a.key for update),
  released as (update login_attempts a set
    attempts = greatest(a.attempts - 1, 0),
    window_start = case when a.attempts <= 1 then '-infinity' else a.window_start end,
    locked_until = case when cast(extract(epoch from a.locked_until) as text) = h.armed then null else a.locked_until end
  from unnest($1::text[], $2::text[]) as h(key, armed)
  where a.key = h.key and a.key in (select key from target))`;
const RELEASE = `with ${RELEASE_CTES} select 1`;

// The login form's statement after the password check (issue 16: three round trips become one): the release of a
// successful sign-in's reservations (none for a failure: it keeps its reservation), the end of the submission ($3,
// $4: only its own claim), and the attempt's audit event (auditInsertSql, src/audit/store.ts, $5 …), all or nothing.
const FINISH_CHECK = `with ${RELEASE_CTES},
  ended as (delete from login_submissions where uid_hash = $3::text and token = $4::text),
  audited as (${auditInsertSql(5)})
  select 1`;

// The login form's statement after a correct password (issue 16: the eligibility read and FINISH_CHECK become one):
// the VAL user's standing ($5, userStandingSql, src/provisioning/store.ts), FINISH_CHECK's release and end, and the
// one audit event of the candidates ($6 …, auditChoiceInsertSql) whose condition the standing meets: the conditions
// (eligibilityConditionSql, src/users/eligibility.ts) come from the caller and are tested in order, the last
// candidate being written when none holds. The standing read is the statement's snapshot, as the event's choice.
function finishSignInText(conditions: string[]): string {
  const cases = conditions.map((condition, i) => `when ${condition} then ${i + 1}`).join(' ');
  return `with standing as (${userStandingSql('$5::text', 'null::text')}),
  choice as (select case ${cases} else ${conditions.length + 1} end as i from standing),
  ${RELEASE_CTES},
  ended as (delete from login_submissions where uid_hash = $3::text and token = $4::text),
  audited as (${auditChoiceInsertSql(6, 'c.i', 'from choice c')})
  select s.status, s.services, s.grant_live, c.i as event from standing s, choice c`;
}

/**
 * Runs one statement again when PostgreSQL broke a deadlock by aborting it (40P01): the statement left nothing
 * behind, so running it again is the same request. The reservation takes its locks in key order, but a row created by
 * another request between its lock phase and its insert phase can still close a cycle.
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

/** Seconds a marker of an unfinished submission lasts (a worker that dies mid-check must not block the form for good). */
const SUBMISSION_SECONDS = 60;

export type Submission = { uidHash: string; token: string };

/** The credentials an allowed attempt checks the password against (none when the ID names no user). */
export type Credentials = Pick<UserRow, 'val_user_id' | 'password_hash' | 'status'>;

export type CheckStart =
  /** Another submission of this login form holds the marker: refused unchecked, nothing counted. */
  | { kind: 'busy' }
  /** Refused on some key: nothing counted on any (the longest lock in `retryAfter`); the marker is held. */
  | { kind: 'throttled'; retryAfter: number; known: boolean; submission: Submission }
  /** Reserved on every key: the password may be checked, against `credentials`; the marker is held. */
  | { kind: 'allowed'; held: HeldAttempt[]; credentials: Credentials | undefined; submission: Submission };

/**
 * Claims login form `interactionUid`'s submission marker (on any worker), and only then reserves one password check on
 * every key or on none (refused on any key, no key is counted, so a request refused by the address lock does not use
 * up the user's attempts), and reads the credentials of `valUserId`: one statement (BEGIN_CHECK). Whatever it returns
 * but `busy`, the marker must be ended with finishPasswordCheck (or releaseSubmission).
 */
export async function beginPasswordCheck(
  db: Db,
  input: { idKey: Buffer; interactionUid: string; keys: { key: string; limit: number }[]; valUserId: string },
  policy: ThrottlePolicy,
): Promise<CheckStart> {
  const submission: Submission = {
    // The uid is stored as a keyed hash: it is the interaction cookie's value.
    uidHash: idPseudonym(input.idKey, `interaction:${input.interactionUid}`),
    token: crypto.randomBytes(16).toString('base64url'),
  };
  const { rows } = await withDeadlockRetry(() =>
    queryPrepared<{
      claimed: boolean;
      allowed: boolean;
      keys: string[];
      counted: boolean[];
      retry_after: (number | null)[];
      armed: (string | null)[];
      known: boolean;
      val_user_id: string | null;
      password_hash: string | null;
      status: UserStatus | null;
    }>(db, 'login_begin_check', BEGIN_CHECK, [
      input.keys.map((k) => k.key),
      input.keys.map((k) => k.limit),
      policy.windowSeconds,
      policy.lockSeconds,
      policy.maxLockSeconds,
      submission.uidHash,
      submission.token,
      SUBMISSION_SECONDS,
      // A NUL cannot be stored in PostgreSQL text, so no user has it (users/ids.ts keeps it from the form anyway).
      input.valUserId.includes('\0') ? null : input.valUserId,
    ]),
  );
  const row = rows[0]!;
  if (!row.claimed) return { kind: 'busy' };
  const held = row.keys.map((key, i) => ({ key, armedLock: row.armed[i] ?? null }));
  if (row.allowed) {
    const credentials = row.val_user_id === null ? undefined : { val_user_id: row.val_user_id, password_hash: row.password_hash, status: row.status! };
    return { kind: 'allowed', held, credentials, submission };
  }
  // Only when a key was locked by rows created after the statement's snapshot were the other keys counted: give them back.
  const counted = held.filter((_, i) => row.counted[i]);
  if (counted.length > 0) await releaseAttempt(db, counted);
  const refusals = row.retry_after.filter((r): r is number => r !== null);
  // The longest lock: trying again any sooner would be refused by it.
  return { kind: 'throttled', retryAfter: Math.max(...refusals), known: row.known, submission };
}

/**
 * Ends a password check begun by beginPasswordCheck, in one statement (FINISH_CHECK): gives back `release` (a
 * successful sign-in's reservations; empty for a failure), ends the submission (only its own claim, by token, not a
 * later one that took over a lapsed marker) and writes the attempt's audit event.
 */
export async function finishPasswordCheck(db: Db, submission: Submission, release: HeldAttempt[], audit: AuditEvent): Promise<void> {
  await withDeadlockRetry(() =>
    queryPrepared(db, 'login_finish_check', FINISH_CHECK, [
      release.map((h) => h.key),
      release.map((h) => h.armedLock),
      submission.uidHash,
      submission.token,
      ...auditValues(audit),
    ]),
  );
}

/** An audit event a sign-in may end with, and the standings it is for (eligibilityConditionSql, src/users/eligibility.ts). */
export type StandingEvent = { when: string; event: AuditEvent };

// Prepared names by text: a name must stand for exactly one text, and the text depends on the caller's conditions.
const signInStatements = new Map<string, { name: string; text: string }>();

/**
 * Ends a password check that found the right password, in one statement: reads `valUserId`'s standing, gives back
 * `release`, ends the submission as finishPasswordCheck does, and writes the first of `events` whose condition the
 * standing meets (the last one when none does). Returns the standing, for the caller to decide on (eligibilityOf),
 * and the index of the event written.
 */
export async function finishSignIn(
  db: Db,
  submission: Submission,
  release: HeldAttempt[],
  valUserId: string,
  events: StandingEvent[],
): Promise<{ standing: UserStandingRow; written: number }> {
  const conditions = events.slice(0, -1).map((e) => e.when);
  const cacheKey = JSON.stringify(conditions);
  let statement = signInStatements.get(cacheKey);
  if (!statement) {
    const text = finishSignInText(conditions);
    statement = { name: `login_finish_sign_in_${crypto.createHash('sha256').update(text).digest('base64url').slice(0, 16)}`, text };
    signInStatements.set(cacheKey, statement);
  }
  const { name, text } = statement;
  const { rows } = await withDeadlockRetry(() =>
    queryPrepared<{ status: UserStatus | null; services: string[]; grant_live: boolean; event: number }>(db, name, text, [
      release.map((h) => h.key),
      release.map((h) => h.armedLock),
      submission.uidHash,
      submission.token,
      valUserId,
      ...auditChoiceValues(events.map((e) => e.event)),
    ]),
  );
  const row = rows[0]!;
  return { standing: userStandingFromRow(row), written: row.event - 1 };
}

/**
 * Gives back reservations, and nothing more: the count goes down by one and a lock that the reservation started is
 * lifted, so the key is as if the attempt had not happened. For a successful sign-in (in finishPasswordCheck), earlier
 * failures keep counting to the end of their window: a sign-in by the owner does not reset what others tried, so an
 * existing, recently used VAL user ID and an unknown one answer alike (issue 10, item 9).
 */
async function releaseAttempt(db: Db, held: HeldAttempt[]): Promise<void> {
  if (held.length === 0) return;
  await withDeadlockRetry(() => queryPrepared(db, 'login_attempts_release', RELEASE, [held.map((h) => h.key), held.map((h) => h.armedLock)]));
}

/**
 * Ends a submission without finishPasswordCheck (a check that failed on the way); only its own claim (by token), not a
 * later one that took over a lapsed marker.
 */
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
