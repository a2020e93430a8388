// The login throttle under parallel requests (issue 10, items 1 and 9): attempts are reserved before the password is
// checked, so no interleaving of requests, forms or instances checks more passwords than the limit; one login form
// takes one submission at a time; the owner's sign-in does not change what an attacker sees.
import * as oidc from 'openid-client';
import { cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import type { ThrottlePolicy } from '../../src/users/throttle.ts';
import { insecure, openLoginForm, provision, submitLogin, type Deployment, type LoginForm } from './support.ts';

/** The default per-user limit (5); addresses are kept out of the way with a high limit. */
const PER_USER: ThrottlePolicy = { windowSeconds: 900, userLimit: 5, addressLimit: 1000, lockSeconds: 30, maxLockSeconds: 900 };
/** A small per-address limit, so "many parallel guesses from one address" stays fast. */
const PER_ADDRESS: ThrottlePolicy = { windowSeconds: 900, userLimit: 5, addressLimit: 10, lockSeconds: 30, maxLockSeconds: 900 };

let database: TestDatabase;
let d: Deployment;
/** A second instance on the same database (what a second worker or machine is), same policy. */
let twin: TestServer;
let twinUe: oidc.Configuration;
let narrow: TestServer;
let narrowUe: oidc.Configuration;

const PROXIED = { IDMS_TRUST_PROXY: '1' };
/** Each test speaks from its own address (the servers trust one proxy hop), so address counters never mix. */
const from = (ip: string) => ({ 'x-forwarded-for': ip });
const PASSWORD = (user: string) => `${user}-password-1`;

beforeAll(async () => {
  database = await createTestDatabase();
  d = await provision(await startTestServer(database, { throttle: PER_USER, env: PROXIED }));
  twin = await startTestServer(database, { throttle: PER_USER, env: PROXIED });
  twinUe = await oidc.discovery(new URL(twin.issuer), 'val-ue', undefined, oidc.None(), insecure);
  narrow = await startTestServer(database, { throttle: PER_ADDRESS, env: PROXIED });
  narrowUe = await oidc.discovery(new URL(narrow.issuer), 'val-ue', undefined, oidc.None(), insecure);
  const users = ['racer-a', 'racer-b', 'racer-c', 'racer-d', 'racer-e', 'racer-f'];
  for (const user of users) await cliOk(d.server.env, ['user', 'add', user, '--password', PASSWORD(user)]);
  await cliOk(d.server.env, ['service', 'grant', 'mcptt-1', ...users]);
}, 120_000);

afterAll(async () => {
  await narrow?.close();
  await twin?.close();
  await d?.server.close();
  await database?.drop();
});

const openForms = (n: number, config: oidc.Configuration = d.ue) => Promise.all(Array.from({ length: n }, () => openLoginForm(config)));
const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;

/** Submits every form at once (one connection each) and returns the statuses in form order. */
async function submitAll(forms: LoginForm[], fields: (i: number) => Record<string, string>, headers: Record<string, string>): Promise<number[]> {
  return Promise.all(
    forms.map(async (form, i) => {
      const res = await submitLogin(form, { csrf: form.csrf, ...fields(i) }, headers);
      await res.text();
      return res.status;
    }),
  );
}

/** Password checks that failed for an existing VAL user, as the audit trail recorded them. */
async function auditedChecks(valUserId: string): Promise<number> {
  const row = await database
    .db('audit_events')
    .where({ action: 'login', actor: valUserId })
    .whereRaw(`details->>'reason' = 'invalid_credentials'`)
    .count({ n: '*' })
    .first();
  return Number(row?.n);
}

describe('parallel wrong passwords are checked at most up to the limit (RFC 9700 §4.16; issue 10 item 1)', () => {
  test('25 parallel wrong passwords for one VAL user: exactly 5 are checked, 20 are answered 429 with Retry-After', async () => {
    const forms = await openForms(25);
    const responses = await Promise.all(
      forms.map((form, i) => submitLogin(form, { csrf: form.csrf, val_user_id: 'racer-a', password: `wrong-${i}` }, from('10.40.0.1'))),
    );
    const statuses = responses.map((r) => r.status);
    expect(count(statuses, 400)).toBe(PER_USER.userLimit);
    expect(count(statuses, 429)).toBe(25 - PER_USER.userLimit);
    for (const res of responses.filter((r) => r.status === 429)) expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    await Promise.all(responses.map((r) => r.text()));
    expect(await auditedChecks('racer-a')).toBe(PER_USER.userLimit);
  });

  test('19 wrong passwords in parallel, then the right one while they are in flight: exactly 5 checked, no sign-in', async () => {
    const forms = await openForms(20);
    const rightForm = forms.pop()!;
    // The right password goes out as soon as the server has said the limit is used up (its first 429), while the
    // other guesses may still be in their password checks: it must not get a check of its own.
    let limitReached!: () => void;
    const firstRefusal = new Promise<void>((resolve) => (limitReached = resolve));
    const wrong = Promise.all(
      forms.map(async (form, i) => {
        const res = await submitLogin(form, { csrf: form.csrf, val_user_id: 'racer-b', password: `wrong-${i}` }, from('10.40.0.2'));
        if (res.status === 429) limitReached();
        await res.text();
        return res.status;
      }),
    );
    await Promise.race([firstRefusal, wrong]);
    const right = await submitLogin(rightForm, { csrf: rightForm.csrf, val_user_id: 'racer-b', password: PASSWORD('racer-b') }, from('10.40.0.2'));
    expect(right.status).toBe(429);
    expect(right.headers.get('location')).toBeNull();
    expect(rightForm.browser.jar.names()).not.toContain('_session');
    const statuses = await wrong;
    expect(count(statuses, 400)).toBe(PER_USER.userLimit);
    expect(count(statuses, 429)).toBe(19 - PER_USER.userLimit);
    expect(await auditedChecks('racer-b')).toBe(PER_USER.userLimit);
  });

  test('40 parallel guesses from one address at different IDs, address limit 10: exactly 10 are checked', async () => {
    const forms = await openForms(40, narrowUe);
    const statuses = await submitAll(forms, (i) => ({ val_user_id: `sprayed-id-${i}`, password: 'Winter2026!' }), from('10.40.0.3'));
    expect(count(statuses, 400)).toBe(PER_ADDRESS.addressLimit);
    expect(count(statuses, 429)).toBe(40 - PER_ADDRESS.addressLimit);
  });

  test('two instances on one database (two workers): 24 parallel wrong passwords split across them, exactly 5 checked', async () => {
    const forms = [...(await openForms(12)), ...(await openForms(12, twinUe))];
    const statuses = await submitAll(forms, (i) => ({ val_user_id: 'racer-e', password: `wrong-${i}` }), from('10.40.0.4'));
    expect(count(statuses, 400)).toBe(PER_USER.userLimit);
    expect(count(statuses, 429)).toBe(24 - PER_USER.userLimit);
    expect(await auditedChecks('racer-e')).toBe(PER_USER.userLimit);
  });

  test('one login form takes one submission at a time: of two concurrent POSTs only one password is checked', async () => {
    const form = await openLoginForm(d.ue);
    const statuses = await submitAll([form, form], (i) => ({ val_user_id: 'racer-c', password: `wrong-${i}` }), from('10.40.0.5'));
    expect(statuses.sort()).toEqual([400, 429]);
    expect(await auditedChecks('racer-c')).toBe(1);
    // Once the first is answered the form takes the next submission: the marker does not outlive its check.
    const again = await submitLogin(form, { csrf: form.csrf, val_user_id: 'racer-c', password: PASSWORD('racer-c') }, from('10.40.0.5'));
    expect(again.status).toBe(303);
  });
});

describe('the throttle does not reveal whether an ID exists or is in use (issue 10 item 9)', () => {
  test("an existing ID whose owner signs in between an attacker's guesses answers exactly like an unknown ID", async () => {
    // Each attack has its own form (interaction ID, csrf value) and its lock its own remaining seconds.
    const normalise = (html: string, id: string) =>
      html
        .replaceAll(`value="${id}"`, 'value="…"')
        .replace(/\/interaction\/[^/"]+\//g, '/interaction/…/')
        .replace(/name="csrf" value="[^"]*"/, 'name="csrf" value="…"')
        .replace(/in \d+ seconds/g, 'in N seconds');
    const guess = async (form: LoginForm, id: string, i: number, ip: string) => {
      const res = await submitLogin(form, { csrf: form.csrf, val_user_id: id, password: `guess-${i}` }, from(ip));
      const headers = [...res.headers.keys()].filter((h) => h !== 'date' && h !== 'content-length').sort();
      return { status: res.status, headers, body: normalise(await res.text(), id) };
    };
    const attack = async (id: string, ip: string, between: () => Promise<void>) => {
      const form = await openLoginForm(d.ue);
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await guess(form, id, i, ip));
      await between();
      for (let i = 3; i <= PER_USER.userLimit; i++) answers.push(await guess(form, id, i, ip));
      return answers;
    };
    const ownerSignsIn = async () => {
      const form = await openLoginForm(d.ue);
      const res = await submitLogin(form, { csrf: form.csrf, val_user_id: 'racer-d', password: PASSWORD('racer-d') }, from('10.40.1.9'));
      expect(res.status).toBe(303);
    };
    const existing = await attack('racer-d', '10.40.1.1', ownerSignsIn);
    const unknown = await attack('nobody-racer-d', '10.40.1.2', async () => {});
    expect(unknown.map((a) => a.status)).toEqual([...Array(PER_USER.userLimit).fill(400), 429]);
    expect(existing).toEqual(unknown);
  });
});
