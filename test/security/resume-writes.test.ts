// The resume step's records (the grant, the authorization code, the session, the interaction's removal) are stored in
// one statement before the redirect carrying the code leaves (src/oidc/adapter.ts flushHeldWrites, issue 16): when they
// cannot be stored, the browser gets an error page and no code, and none of them is half-written.
import { cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { openLoginForm, PASSWORDS, provision, REDIRECT, submitLogin, type Deployment } from './support.ts';

let database: TestDatabase;
let server: TestServer;
let d: Deployment;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  d = await provision(server);
  await cliOk(server.env, ['user', 'add', 'carol', '--password', 'carol-password-1']);
  await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'carol']);
});

afterAll(async () => {
  await database.db.raw('drop trigger if exists test_refuse_codes on oidc_payloads');
  await database.db.raw('drop function if exists test_refuse_codes()');
  await server?.close();
  await database?.drop();
});

/** Signs in on the form and asks for the resume step (GET /auth/:uid), as a browser would; returns its answer. */
async function resumeAfterLogin(user: string, password: string): Promise<{ res: Response; body: string }> {
  const form = await openLoginForm(d.ue, { scope: 'openid 3gpp:seal:val_service' });
  const posted = await submitLogin(form, { csrf: form.csrf, val_user_id: user, password });
  expect(posted.status).toBe(303);
  const resume = new URL(posted.headers.get('location')!, form.action).href;
  expect(new URL(resume).pathname).toMatch(/^\/auth\//);
  const res = await fetch(resume, { redirect: 'manual', headers: { cookie: form.browser.jar.header() } });
  return { res, body: await res.text() };
}

const records = async (kind: string, accountId: string) =>
  Number((await database.db.raw(`select count(*)::int as n from oidc_payloads where kind = ? and payload->>'accountId' = ?`, [kind, accountId])).rows[0].n);

test('a resume stores the grant, the code and the session before its redirect with the code', async () => {
  const { res } = await resumeAfterLogin('alice', PASSWORDS.alice);
  expect(res.status).toBe(303);
  const callback = new URL(res.headers.get('location')!);
  expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT);
  expect(callback.searchParams.get('code')).toBeTruthy();
  // Read back right after the redirect: nothing of the step is still on its way.
  expect(await records('Grant', 'alice')).toBeGreaterThanOrEqual(1);
  expect(await records('AuthorizationCode', 'alice')).toBe(1);
  expect(await records('Session', 'alice')).toBeGreaterThanOrEqual(1);
});

test('a resume whose records cannot all be stored sends an error page, no code, and stores none of them', async () => {
  // PostgreSQL refuses the code's row, as a full disk or a constraint would.
  await database.db.raw(`create function test_refuse_codes() returns trigger language plpgsql as $$
    begin raise exception 'test: codes cannot be stored'; end $$`);
  await database.db.raw(`create trigger test_refuse_codes before insert on oidc_payloads for each row
    when (new.kind = 'AuthorizationCode') execute function test_refuse_codes()`);
  try {
    const { res, body } = await resumeAfterLogin('carol', 'carol-password-1');
    expect(res.status).toBe(500);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(body).not.toMatch(/code=/);
    // All or nothing: neither the grant nor the session of this sign-in was written without its code.
    expect(await records('AuthorizationCode', 'carol')).toBe(0);
    expect(await records('Grant', 'carol')).toBe(0);
    expect(await records('Session', 'carol')).toBe(0);
  } finally {
    await database.db.raw('drop trigger if exists test_refuse_codes on oidc_payloads');
    await database.db.raw('drop function if exists test_refuse_codes()');
  }
  // Once the code can be stored again, the same user signs in.
  const { res } = await resumeAfterLogin('carol', 'carol-password-1');
  expect(res.status).toBe(303);
  expect(new URL(res.headers.get('location')!).searchParams.get('code')).toBeTruthy();
});
