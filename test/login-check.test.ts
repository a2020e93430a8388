// The login form's two statements around the password check (issue 16, src/users/throttle.ts): the first claims the
// form's submission, reserves the check on every key and reads the credentials, which it returns only to an attempt
// it allowed; the second gives back a sign-in's reservation, ends the submission and writes the audit event, and
// after a correct password also reads the VAL user's standing and chooses the audit event by it (finishSignIn).
import crypto from 'node:crypto';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { loginRefusal, SIGN_IN_OUTCOMES } from '../src/interactions/login.ts';
import { addServiceUserPairs, readUserStanding } from '../src/provisioning/store.ts';
import { eligibilityOf } from '../src/users/eligibility.ts';
import { insertUser, setStatus } from '../src/users/store.ts';
import { beginPasswordCheck, finishPasswordCheck, finishSignIn, releaseSubmission, type CheckStart, type ThrottlePolicy } from '../src/users/throttle.ts';

const POLICY: ThrottlePolicy = { windowSeconds: 900, userLimit: 3, addressLimit: 100, lockSeconds: 30, maxLockSeconds: 900 };
const idKey = crypto.randomBytes(32);

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  await insertUser(database.db, 'known-user', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA');
});

afterAll(async () => {
  await database?.drop();
});

let n = 0;
/** A fresh key pair (user, address) per test, so counters never mix. */
function keys() {
  n++;
  return { user: `user:test-${n}`, address: `ip:10.9.0.${n}` };
}

function begin(k: { user: string; address: string }, valUserId: string, interactionUid: string, policy = POLICY): Promise<CheckStart> {
  return beginPasswordCheck(
    database.db,
    {
      idKey,
      interactionUid,
      keys: [
        { key: k.user, limit: policy.userLimit },
        { key: k.address, limit: policy.addressLimit },
      ],
      valUserId,
    },
    policy,
  );
}

async function attempts(key: string): Promise<number> {
  const row = await database.db('login_attempts').where({ key }).first('attempts');
  return row ? Number(row.attempts) : 0;
}

async function audited(actor: string): Promise<number> {
  return (await database.db('audit_events').where({ actor, action: 'login' })).length;
}

test('an allowed attempt gets the credentials of a known ID, none for an unknown one, and both count alike', async () => {
  const k1 = keys();
  const known = await begin(k1, 'known-user', 'form-known');
  expect(known).toMatchObject({ kind: 'allowed', credentials: { val_user_id: 'known-user', status: 'active' } });
  expect(known.kind === 'allowed' && known.credentials?.password_hash).toMatch(/^\$argon2id\$/);
  const k2 = keys();
  const unknown = await begin(k2, 'nobody-here', 'form-unknown');
  expect(unknown).toMatchObject({ kind: 'allowed', credentials: undefined });
  expect([await attempts(k1.user), await attempts(k1.address), await attempts(k2.user), await attempts(k2.address)]).toEqual([1, 1, 1, 1]);
});

test('a second submission of a form being checked is busy: nothing counted, no credentials', async () => {
  const k = keys();
  const first = await begin(k, 'known-user', 'form-busy');
  expect(first.kind).toBe('allowed');
  const second = await begin(k, 'known-user', 'form-busy');
  expect(second).toEqual({ kind: 'busy' });
  expect([await attempts(k.user), await attempts(k.address)]).toEqual([1, 1]);
  // Another form is not held up by it.
  expect((await begin(k, 'known-user', 'form-busy-other')).kind).toBe('allowed');
});

test('a locked key: throttled, no credentials returned, nothing counted on the other key', async () => {
  const k = keys();
  for (let i = 0; i < POLICY.userLimit; i++) expect((await begin(k, 'known-user', `form-lock-${i}`)).kind).toBe('allowed');
  const refused = await begin(k, 'known-user', 'form-lock-refused');
  expect(refused).toMatchObject({ kind: 'throttled', known: true });
  expect(refused).not.toHaveProperty('credentials');
  expect(JSON.stringify(refused)).not.toContain('argon2');
  expect([await attempts(k.user), await attempts(k.address)]).toEqual([POLICY.userLimit, POLICY.userLimit]);
  const unknown = await begin({ user: k.user, address: keys().address }, 'nobody-here', 'form-lock-unknown');
  expect(unknown).toMatchObject({ kind: 'throttled', known: false });
  // The refused submission holds its marker until it is ended, like any other.
  if (refused.kind === 'throttled') await releaseSubmission(database.db, refused.submission);
});

test('parallel submissions of different forms on one ID: exactly the limit is allowed', async () => {
  const k = keys();
  const starts = await Promise.all(Array.from({ length: 12 }, (_, i) => begin(k, 'known-user', `form-parallel-${i}`)));
  expect(starts.filter((s) => s.kind === 'allowed')).toHaveLength(POLICY.userLimit);
  expect(starts.filter((s) => s.kind === 'throttled')).toHaveLength(12 - POLICY.userLimit);
  expect(await attempts(k.user)).toBe(POLICY.userLimit);
});

test('the finish gives back only what it is given, ends the submission and writes the audit event', async () => {
  const k = keys();
  const failed = await begin(k, 'known-user', 'form-finish');
  if (failed.kind !== 'allowed') throw new Error(failed.kind);
  await finishPasswordCheck(database.db, failed.submission, [], { actor: 'finish-actor', action: 'login', subject: 'c', result: 'failure' });
  expect(await attempts(k.user)).toBe(1); // a failure keeps its reservation
  expect(await audited('finish-actor')).toBe(1);

  // The marker is gone: the same form takes the next submission.
  const signedIn = await begin(k, 'known-user', 'form-finish');
  if (signedIn.kind !== 'allowed') throw new Error(signedIn.kind);
  expect(await attempts(k.user)).toBe(2);
  await finishPasswordCheck(database.db, signedIn.submission, signedIn.held, { actor: 'finish-actor', action: 'login', subject: 'c', result: 'success' });
  expect([await attempts(k.user), await attempts(k.address)]).toEqual([1, 1]);
  expect(await audited('finish-actor')).toBe(2);
  expect(await database.db('login_submissions').where({ uid_hash: signedIn.submission.uidHash })).toHaveLength(0);
});

describe('after a correct password, one statement reads the standing and writes the event of its outcome', () => {
  const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';
  // Every standing the rule tells apart (grant not asked: a login has none), and the outcome login gives it.
  const STANDINGS = [
    ['sign-ok', 'active', true, undefined],
    ['sign-no-service', 'active', false, 'no_val_service'],
    ['sign-disabled', 'disabled', true, 'invalid_credentials'],
    ['sign-disabled-none', 'disabled', false, 'invalid_credentials'],
    ['sign-deleted-mapped', undefined, true, 'invalid_credentials'],
    ['sign-deleted', undefined, false, 'invalid_credentials'],
  ] as const;

  beforeAll(async () => {
    for (const [id, status, provisioned] of STANDINGS) {
      if (status) await insertUser(database.db, id, HASH);
      if (status === 'disabled') await setStatus(database.db, id, 'disabled');
      if (provisioned) await addServiceUserPairs(database.db, ['svc-a', 'svc-b'], [id, id], 'test');
    }
  });

  test.each(STANDINGS)('%s (%s, provisioned: %s): %s', async (id, _status, _provisioned, expected) => {
    const k = keys();
    const start = await begin(k, id, `form-${id}`);
    if (start.kind !== 'allowed') throw new Error(start.kind);
    const events = SIGN_IN_OUTCOMES.map(({ reason, when }) => ({
      when,
      event: { actor: id, action: 'login', subject: 'c', result: reason ? 'failure' : 'success', details: reason ? { reason } : {} } as const,
    }));
    const { standing, written } = await finishSignIn(database.db, start.submission, start.held, id, events);

    // The standing as the one rule reads it, and the event written is the one login's decision on it names.
    expect(standing).toEqual(await readUserStanding(database.db, id));
    expect(loginRefusal(eligibilityOf(standing))?.reason).toBe(expected);
    expect(SIGN_IN_OUTCOMES[written]!.reason).toBe(expected);
    const rows = await database.db('audit_events').where({ actor: id, action: 'login' }).select('result', 'details', 'subject');
    expect(rows).toEqual([{ result: expected ? 'failure' : 'success', details: expected ? { reason: expected } : {}, subject: 'c' }]);
    // The reservation given back and the submission ended, whatever the outcome.
    expect([await attempts(k.user), await attempts(k.address)]).toEqual([0, 0]);
    expect(await database.db('login_submissions').where({ uid_hash: start.submission.uidHash })).toHaveLength(0);
  });

  test('the outcomes cover every standing, each once: sign-in, no VAL service, and the generic refusal', () => {
    expect(SIGN_IN_OUTCOMES.map((o) => o.reason)).toEqual([undefined, 'invalid_credentials', 'no_val_service']);
  });
});
