// The login form under attack: CSRF, user enumeration (answers and timing), brute force throttling, session fixation.
import { performance } from 'node:perf_hooks';
import * as oidc from 'openid-client';
import { Browser } from '../helpers/browser.ts';
import { cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer, TEST_SECRET, type TestServer } from '../helpers/server.ts';
import { deriveSecrets } from '../../src/config/secret.ts';
import { hashPassword, verifyPassword } from '../../src/users/passwords.ts';
import { userKey, type ThrottlePolicy } from '../../src/users/throttle.ts';
import { authRequest, insecure, login, median, openLoginForm, PASSWORDS, provision, submitLogin, type Deployment } from './support.ts';

/** "José" with a precomposed é (NFC, as stored) and with e + combining acute (NFD): one name, two spellings. */
const JOSE_NFC = 'Jos\u00e9-val';
const JOSE_NFD = 'Jose\u0301-val';
/** A user whose ID holds U+FFFD, the character a lone surrogate would collapse into. */
const REPLACEMENT_USER = 'sur\ufffdid';

const RELAXED: ThrottlePolicy = { windowSeconds: 900, userLimit: 10_000, addressLimit: 10_000, lockSeconds: 30, maxLockSeconds: 900 };
const STRICT: ThrottlePolicy = { windowSeconds: 900, userLimit: 3, addressLimit: 6, lockSeconds: 30, maxLockSeconds: 900 };

let database: TestDatabase;
let d: Deployment;
/** A second instance on the same database behind a "proxy" (IDMS_TRUST_PROXY=1) with small throttle limits. */
let strict: TestServer;
let strictDeployment: Deployment;

beforeAll(async () => {
  database = await createTestDatabase();
  d = await provision(await startTestServer(database, { throttle: RELAXED }));
  strict = await startTestServer(database, { throttle: STRICT, env: { IDMS_TRUST_PROXY: '1' } });
  strictDeployment = { ...d, server: strict, ue: await oidc.discovery(new URL(strict.issuer), 'val-ue', undefined, oidc.None(), insecure) };
  await cliOk(d.server.env, ['user', 'add', 'mallory', '--password', 'mallory-password-1']);
  await cliOk(d.server.env, ['user', 'add', 'disabled-user', '--password', 'disabled-password-1']);
  await cliOk(d.server.env, ['user', 'disable', 'disabled-user']);
  for (const user of ['carol', 'dave', 'erin', 'frank']) await cliOk(d.server.env, ['user', 'add', user, '--password', `${user}-password-1`]);
  await cliOk(d.server.env, ['user', 'add', JOSE_NFC, '--password', 'jose-password-1']);
  await cliOk(d.server.env, ['user', 'add', REPLACEMENT_USER, '--password', 'replacement-password-1']);
  await cliOk(d.server.env, ['service', 'grant', 'mcptt-1', 'mallory', 'carol', 'dave', 'erin', 'frank', JOSE_NFC, REPLACEMENT_USER]);
});

afterAll(async () => {
  await strict?.close();
  await d?.server.close();
  await database?.drop();
});

describe('login CSRF (RFC 9700 §4.7, OWASP login CSRF)', () => {
  test('a submission without the csrf field is refused and logs nobody in', async () => {
    const form = await openLoginForm(d.ue);
    const res = await submitLogin(form, { val_user_id: 'alice', password: PASSWORDS.alice });
    expect(res.status).toBe(403);
    expect(res.headers.get('location')).toBeNull();
    expect(form.browser.jar.names()).not.toContain('_session');
  });

  test('a wrong csrf value is refused', async () => {
    const form = await openLoginForm(d.ue);
    const res = await submitLogin(form, { csrf: form.csrf.slice(0, -2) + 'xx', val_user_id: 'alice', password: PASSWORDS.alice });
    expect(res.status).toBe(403);
  });

  test('the csrf value of another sign-in request is refused', async () => {
    const mine = await openLoginForm(d.ue);
    const other = await openLoginForm(d.ue);
    const res = await submitLogin(mine, { csrf: other.csrf, val_user_id: 'alice', password: PASSWORDS.alice });
    expect(res.status).toBe(403);
  });

  test("an attacker's complete form posted from a browser without the interaction cookie is refused", async () => {
    // The attacker opens the flow in their own browser and makes the victim's browser submit it (login CSRF).
    const attacker = await openLoginForm(d.ue);
    const victim = { ...attacker, browser: new Browser() };
    const res = await submitLogin(victim, { csrf: attacker.csrf, val_user_id: 'mallory', password: 'mallory-password-1' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });

  test('control: the same form with its csrf value and cookie signs in', async () => {
    const form = await openLoginForm(d.ue);
    const res = await submitLogin(form, { csrf: form.csrf, val_user_id: 'alice', password: PASSWORDS.alice });
    expect(res.status).toBe(303);
  });
});

describe('user enumeration (OWASP ASVS V2.2, RFC 9700 §4.16)', () => {
  const normalise = (html: string, userId: string) => html.replaceAll(`value="${userId}"`, 'value="…"');

  test('unknown user, wrong password and disabled user get the same status, body and headers', async () => {
    const form = await openLoginForm(d.ue);
    const answers = [];
    for (const [user, password] of [
      ['nobody-here', 'some-password-1'],
      ['alice', 'wrong-password-1'],
      ['disabled-user', 'disabled-password-1'],
    ] as const) {
      const res = await submitLogin(form, { csrf: form.csrf, val_user_id: user, password });
      const headers = [...res.headers.keys()].filter((h) => h !== 'date' && h !== 'content-length').sort();
      answers.push({ status: res.status, headers, body: normalise(await res.text(), user) });
    }
    expect(answers[0]!.status).toBe(400);
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
  });

  test('unknown user and wrong password take the same time (30 interleaved tries each, within half an argon2id verification)', async () => {
    const form = await openLoginForm(d.ue);
    const time = async (user: string, password: string) => {
      const start = performance.now();
      const res = await submitLogin(form, { csrf: form.csrf, val_user_id: user, password });
      await res.text();
      expect(res.status).toBe(400);
      return performance.now() - start;
    };
    await time('alice', 'warm-up-password'); // the dummy hash and the first argon2 run are one-off costs
    await time('nobody-warm-up', 'warm-up-password');
    // Interleaved triples (unknown user, wrong password, one bare argon2id verification as the yardstick), so drift
    // in machine load hits all three alike; the comparison is on the paired differences.
    const hash = await hashPassword('band-measurement-password');
    const unknown: number[] = [];
    const wrong: number[] = [];
    const cost: number[] = [];
    for (let i = 0; i < 30; i++) {
      unknown.push(await time(`nobody-${i}`, `guess-${i}-password`));
      wrong.push(await time('alice', `guess-${i}-password`));
      const start = performance.now();
      await verifyPassword(hash, `guess-${i}-password`);
      cost.push(performance.now() - start);
    }
    const gap = median(wrong.map((w, i) => w - unknown[i]!));
    const verification = median(cost);
    console.info(
      `login timing medians: unknown user ${median(unknown).toFixed(1)} ms, wrong password ${median(wrong).toFixed(1)} ms, ` +
        `paired gap ${gap.toFixed(1)} ms, one argon2id verification ${verification.toFixed(1)} ms`,
    );
    // The band is half of one verification: an unknown user that skipped the dummy verification would answer a
    // whole verification faster than a wrong password.
    expect(Math.abs(gap)).toBeLessThan(verification / 2);
  });
});

describe('brute force throttling (RFC 9700 §4.16, OWASP ASVS V2.2.1)', () => {
  const from = (ip: string) => ({ 'x-forwarded-for': ip });

  test('after the per-user limit the account is locked, even for the right password and from another address', async () => {
    const form = await openLoginForm(strictDeployment.ue);
    for (let i = 0; i < STRICT.userLimit; i++) {
      const res = await submitLogin(form, { csrf: form.csrf, val_user_id: 'carol', password: `wrong-${i}` }, from('10.1.0.1'));
      expect(res.status).toBe(400);
    }
    const right = await submitLogin(form, { csrf: form.csrf, val_user_id: 'carol', password: 'carol-password-1' }, from('10.1.0.1'));
    expect(right.status).toBe(429);
    expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(0);
    const elsewhere = await openLoginForm(strictDeployment.ue);
    expect((await submitLogin(elsewhere, { csrf: elsewhere.csrf, val_user_id: 'carol', password: 'carol-password-1' }, from('10.1.0.2'))).status).toBe(429);
  });

  test('an unknown VAL user ID is locked the same way (the lock does not reveal existence)', async () => {
    const form = await openLoginForm(strictDeployment.ue);
    const statuses = [];
    for (let i = 0; i <= STRICT.userLimit; i++) {
      statuses.push((await submitLogin(form, { csrf: form.csrf, val_user_id: 'no-such-user', password: `wrong-${i}` }, from('10.1.0.3'))).status);
    }
    expect(statuses).toEqual([...Array(STRICT.userLimit).fill(400), 429]);
  });

  test('after the per-address limit, that address is locked for every user; other addresses are not', async () => {
    const form = await openLoginForm(strictDeployment.ue);
    // One failure per user: no user reaches its own limit, only the address does.
    for (let i = 0; i < STRICT.addressLimit; i++) {
      expect((await submitLogin(form, { csrf: form.csrf, val_user_id: `sprayed-${i}`, password: 'Winter2026!' }, from('10.2.0.1'))).status).toBe(400);
    }
    expect((await submitLogin(form, { csrf: form.csrf, val_user_id: 'dave', password: 'dave-password-1' }, from('10.2.0.1'))).status).toBe(429);
    const other = await openLoginForm(strictDeployment.ue);
    expect((await submitLogin(other, { csrf: other.csrf, val_user_id: 'dave', password: 'dave-password-1' }, from('10.2.0.2'))).status).toBe(303);
  });

  test('X-Forwarded-For entries written by the client do not dodge the address limit (only the proxy-appended hop counts)', async () => {
    const form = await openLoginForm(strictDeployment.ue);
    for (let i = 0; i < STRICT.addressLimit; i++) {
      const spoofed = { 'x-forwarded-for': `198.51.100.${i}, 10.3.0.1` };
      expect((await submitLogin(form, { csrf: form.csrf, val_user_id: `spray-${i}`, password: 'Winter2026!' }, spoofed)).status).toBe(400);
    }
    const again = await submitLogin(
      form,
      { csrf: form.csrf, val_user_id: 'erin', password: 'erin-password-1' },
      { 'x-forwarded-for': '203.0.113.9, 10.3.0.1' },
    );
    expect(again.status).toBe(429);
  });

  test('without IDMS_TRUST_PROXY, X-Forwarded-For is ignored: the socket address is what counts', async () => {
    // The relaxed server does not trust proxies; its limits are high, so read the counters it wrote instead.
    const form = await openLoginForm(d.ue);
    await submitLogin(form, { csrf: form.csrf, val_user_id: 'frank', password: 'wrong-password' }, from('10.9.9.9'));
    const keys = await database.db('login_attempts').pluck('key');
    expect(keys).toContain('ip:127.0.0.1');
    expect(keys).not.toContain('ip:10.9.9.9');
  });
});

/**
 * Follows the login response to the client's redirect_uri, including the auto-submitted form oidc-provider shows when
 * the browser's session belonged to another account (it ends that session first).
 */
async function completeLogin(browser: Browser, res: Response, redirectUri: string): Promise<string> {
  let current = res;
  let base = 'http://invalid/';
  for (let i = 0; i < 10; i++) {
    const location = current.headers.get('location');
    if (location) {
      const next = new URL(location, current.url || base);
      if (next.href.startsWith(redirectUri)) return next.href;
      base = next.href;
      current = await browser.get(next);
      continue;
    }
    const html = await current.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
    if (!action) throw new Error(`login stopped at HTTP ${current.status}: ${html.slice(0, 200)}`);
    const fields = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    base = new URL(action.replace(/&amp;/g, '&'), base).href;
    current = await browser.post(base, fields);
  }
  throw new Error('too many steps');
}

describe('session fixation (OWASP session management)', () => {
  const SESSION = '_session';

  test('the session cookie value changes at login, and the old value no longer identifies a session', async () => {
    // The attacker signs in as themselves and plants their session cookies in the victim's browser.
    const attacker = await login(d.ue, 'bob');
    const planted = attacker.browser.jar.get(SESSION);
    const plantedSig = attacker.browser.jar.get(`${SESSION}.sig`);
    expect(planted).toEqual(expect.any(String));
    const victim = new Browser();
    victim.jar.store(
      new Response(null, {
        headers: [
          ['set-cookie', `${SESSION}=${planted}; path=/`],
          ['set-cookie', `${SESSION}.sig=${plantedSig}; path=/`],
        ],
      }),
    );

    const form = await openLoginForm(d.ue, { prompt: 'login' }, victim);
    const callback = await completeLogin(
      victim,
      await submitLogin(form, { csrf: form.csrf, val_user_id: 'alice', password: PASSWORDS.alice }),
      form.req.redirectUri,
    );
    expect(new URL(callback).searchParams.get('code')).toEqual(expect.any(String));
    const after = victim.jar.get(SESSION);
    expect(after).toEqual(expect.any(String));
    expect(after).not.toBe(planted);

    // The attacker's copy is dead: it does not silently sign them in as the victim.
    const { url } = await authRequest(d.ue, { prompt: 'none' });
    const res = await attacker.browser.get(url);
    expect(new URL(res.headers.get('location')!).searchParams.get('error')).toBe('login_required');
  });

  test('a session ID chosen by the attacker is never adopted', async () => {
    const victim = new Browser();
    victim.jar.store(new Response(null, { headers: [['set-cookie', `${SESSION}=attacker-chosen-session-id; path=/`]] }));
    await login(d.ue, 'alice', {}, victim);
    expect(victim.jar.get(SESSION)).not.toBe('attacker-chosen-session-id');
  });
});

describe('the login page and the VAL user ID rule (issue 10 item 8)', () => {
  test('`{{…}}` typed as the VAL user ID comes back as typed, escaped once; the page does not grow with it', async () => {
    const form = await openLoginForm(d.ue);
    const page = async (id: string) => {
      const res = await submitLogin(form, { csrf: form.csrf, val_user_id: id, password: 'wrong-password-1' });
      expect(res.status).toBe(400);
      return res.text();
    };
    const typed = '{{body}}{{title}}{{{body}}}';
    const plain = 'x'.repeat(typed.length);
    const [withMustaches, withPlain] = [await page(typed), await page(plain)];
    expect(withMustaches).toContain(`value="${typed}"`);
    // Same length of input, same page: nothing in the input expanded into another template variable.
    expect(withMustaches.length).toBe(withPlain.length);
    expect(withMustaches.match(/<title>/g)).toHaveLength(1);
  });

  test('the NFC and NFD spellings of one VAL user ID sign in as one user, whose sub is the NFC form', async () => {
    const subOf = async (typed: string) => {
      const req = await authRequest(d.ue);
      const callback = await new Browser().login(req.url, typed, 'jose-password-1', req.redirectUri);
      const tokens = await oidc.authorizationCodeGrant(d.ue, new URL(callback), {
        pkceCodeVerifier: req.verifier,
        expectedState: req.state,
        expectedNonce: req.nonce,
      });
      return tokens.claims()?.sub;
    };
    expect(await subOf(JOSE_NFC)).toBe(JOSE_NFC);
    expect(await subOf(JOSE_NFD)).toBe(JOSE_NFC);
    const actors = await database.db('audit_events').where({ action: 'login', result: 'success' }).whereIn('actor', [JOSE_NFC, JOSE_NFD]).pluck('actor');
    expect(actors).toEqual([JOSE_NFC, JOSE_NFC]);
  });

  test('an ID sent as an encoded lone surrogate gets the generic answer and signs in nobody, not even the U+FFFD user', async () => {
    const form = await openLoginForm(d.ue);
    // %ED%A0%80 is U+D800 encoded as if it were a character (WTF-8): not UTF-8; it decodes to replacement characters.
    const body = `csrf=${encodeURIComponent(form.csrf)}&val_user_id=sur%ED%A0%80id&password=replacement-password-1`;
    const res = await fetch(form.action, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: form.browser.jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toContain('The VAL user ID or password is incorrect.');
  });

  test('an ID over 255 UTF-8 bytes gets the generic answer without a password check (nothing counted or audited)', async () => {
    const form = await openLoginForm(d.ue);
    const before = { audit: await database.db('audit_events').count({ n: '*' }).first(), keys: await database.db('login_attempts').select('*').orderBy('key') };
    // 128 characters (under the old 255-character limit) but 256 bytes in UTF-8: over TS 33.434 A.2.1.2's 255 octets.
    const res = await submitLogin(form, { csrf: form.csrf, val_user_id: '\u00e9'.repeat(128), password: 'some-password-1' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('The VAL user ID or password is incorrect.');
    expect(await database.db('audit_events').count({ n: '*' }).first()).toEqual(before.audit);
    expect(await database.db('login_attempts').select('*').orderBy('key')).toEqual(before.keys);
  });
});

describe('a password typed into the user ID field is not kept in clear (issue 10 item 9)', () => {
  test('neither the audit trail nor the throttle keys hold it: unknown IDs are a keyed hash, existing IDs themselves', async () => {
    const typedPassword = 'Tr0ub4dor&3-correct-horse';
    const form = await openLoginForm(d.ue);
    expect((await submitLogin(form, { csrf: form.csrf, val_user_id: typedPassword, password: 'alice' })).status).toBe(400);
    expect((await submitLogin(form, { csrf: form.csrf, val_user_id: 'alice', password: 'not-alices-password' })).status).toBe(400);

    const audit = await database.db('audit_events').select('*');
    const keys: string[] = await database.db('login_attempts').pluck('key');
    expect(JSON.stringify(audit)).not.toContain(typedPassword);
    expect(JSON.stringify(keys)).not.toContain(typedPassword);
    const [unknownFailure, aliceFailure] = await database
      .db('audit_events')
      .where({ action: 'login', result: 'failure' })
      .orderBy('id', 'desc')
      .limit(2)
      .then((rows) => rows.reverse());
    expect(unknownFailure.actor).toMatch(/^unknown:[0-9a-f]{32}$/);
    expect(aliceFailure.actor).toBe('alice');
    // Every per-user key is a keyed hash, whatever the ID (the key table never holds a submitted ID).
    for (const key of keys.filter((k) => k.startsWith('user:'))) expect(key).toMatch(/^user:[0-9a-f]{64}$/);
    expect(keys.filter((k) => k.startsWith('user:')).length).toBeGreaterThan(0);
  });
});

describe('the outcomes of a correct password: answer, audit event, reservation (issue 16: one statement after the check)', () => {
  const CLIENT = 'val-ue';

  /** Logs in through the form with a password; the callback's parameters, the attempt's audit event and what its ID key still counts. */
  async function passwordLogin(user: string, password: string) {
    const req = await authRequest(d.ue);
    const callback = new URL(await new Browser().login(req.url, user, password, req.redirectUri));
    const [event] = await database
      .db('audit_events')
      .where({ action: 'login', actor: user })
      .orderBy('id', 'desc')
      .limit(1)
      .select('actor', 'subject', 'result', 'details');
    const row = await database
      .db('login_attempts')
      .where({ key: userKey(deriveSecrets(TEST_SECRET).loginIdKey, user) })
      .first('attempts');
    return { params: Object.fromEntries(callback.searchParams), event, attempts: Number(row?.attempts ?? 0) };
  }

  beforeAll(async () => {
    for (const user of ['outcome-ok', 'outcome-none', 'outcome-disabled', 'outcome-deleted'])
      await cliOk(d.server.env, ['user', 'add', user, '--password', `${user}-password-1`]);
    await cliOk(d.server.env, ['service', 'grant', 'mcptt-1', 'outcome-ok', 'outcome-disabled', 'outcome-deleted']);
    // An administrator's `user disable` / `user delete` landing between the password check and the statement after
    // it, made exact: committed with the login form's first statement, by a trigger on the reservation of the user's
    // own ID key (an AFTER trigger runs after that statement read the credentials, which are active), so the check
    // passes and the statement after it reads the change.
    const key = (user: string) => userKey(deriveSecrets(TEST_SECRET).loginIdKey, user);
    await database.db.raw(`create function test_change_standing() returns trigger language plpgsql as $$ begin
      if new.key = '${key('outcome-disabled')}' then update val_users set status = 'disabled' where val_user_id = 'outcome-disabled'; end if;
      if new.key = '${key('outcome-deleted')}' then
        delete from val_service_users where val_user_id = 'outcome-deleted';
        delete from val_users where val_user_id = 'outcome-deleted';
      end if;
      return null; end $$`);
    await database.db.raw('create trigger test_change_standing after insert or update on login_attempts for each row execute function test_change_standing()');
  });

  afterAll(async () => {
    await database.db.raw('drop trigger if exists test_change_standing on login_attempts');
    await database.db.raw('drop function if exists test_change_standing()');
  });

  test('provisioned and active: signed in (a code), audited as a success, the reservation given back', async () => {
    const { params, event, attempts } = await passwordLogin('outcome-ok', 'outcome-ok-password-1');
    expect(params.code).toBeDefined();
    expect(params.error).toBeUndefined();
    expect(event).toEqual({ actor: 'outcome-ok', subject: CLIENT, result: 'success', details: {} });
    expect(attempts).toBe(0);
  });

  test('provisioned for no VAL service: access_denied, audited as no_val_service, the reservation given back', async () => {
    const { params, event, attempts } = await passwordLogin('outcome-none', 'outcome-none-password-1');
    expect(params).toMatchObject({ error: 'access_denied', error_description: 'the VAL user is not provisioned for any VAL service' });
    expect(params.code).toBeUndefined();
    expect(event).toEqual({ actor: 'outcome-none', subject: CLIENT, result: 'failure', details: { reason: 'no_val_service' } });
    expect(attempts).toBe(0);
  });

  test.each(['outcome-disabled', 'outcome-deleted'])('%s after the password check: refused, never signed in, audited as invalid_credentials', async (user) => {
    const { params, event, attempts } = await passwordLogin(user, `${user}-password-1`);
    expect(params).toMatchObject({ error: 'access_denied', error_description: 'the VAL user is unknown or disabled' });
    expect(params.code).toBeUndefined();
    expect(event).toEqual({ actor: user, subject: CLIENT, result: 'failure', details: { reason: 'invalid_credentials' } });
    expect(attempts).toBe(0);
  });

  test('control: a wrong password is audited as invalid_credentials and keeps its reservation', async () => {
    const form = await openLoginForm(d.ue);
    expect((await submitLogin(form, { csrf: form.csrf, val_user_id: 'outcome-ok', password: 'not-the-password-1' })).status).toBe(400);
    const [event] = await database
      .db('audit_events')
      .where({ action: 'login', actor: 'outcome-ok' })
      .orderBy('id', 'desc')
      .limit(1)
      .select('result', 'details');
    expect(event).toEqual({ result: 'failure', details: { reason: 'invalid_credentials' } });
    const row = await database
      .db('login_attempts')
      .where({ key: userKey(deriveSecrets(TEST_SECRET).loginIdKey, 'outcome-ok') })
      .first('attempts');
    expect(Number(row.attempts)).toBe(1);
  });
});
