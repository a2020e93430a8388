// Secrets at rest (issue 10 item 5): a copy of the database hands out no usable token, code, session or client secret,
// and what was stored before the change keeps working once converted.
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import type { Adapter } from 'oidc-provider';
import { Browser } from '../helpers/browser.ts';
import { cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { authRequest, insecure, login, loginAndRedeem, PASSWORDS, provision, SCOPE, VAL_SERVER_SECRET, WEB_SECRET, type Deployment } from './support.ts';

let database: TestDatabase;
let d: Deployment;

beforeAll(async () => {
  database = await createTestDatabase();
  d = await provision(await startTestServer(database));
});

afterAll(async () => {
  await d?.server.close();
  await database?.drop();
});

/** Every row of every table of the database, as text: where a leaked backup would find a value. */
async function databaseText(): Promise<string> {
  const tables: string[] = await database.db('information_schema.tables').where({ table_schema: 'public', table_type: 'BASE TABLE' }).pluck('table_name');
  const parts: string[] = [];
  for (const table of tables) {
    const { rows } = (await database.db.raw(`select t::text as row from "${table}" t`)) as { rows: { row: string }[] };
    parts.push(...rows.map((r) => r.row));
  }
  return parts.join('\n');
}

function storedAmong(text: string, values: Record<string, string>): string[] {
  return Object.entries(values)
    .filter(([, v]) => text.includes(v))
    .map(([name]) => name);
}

const isJwt = (token: string) => token.split('.').length === 3;

test('after sign-in, code redemption, refresh and client registration no column holds a token, code, session cookie or client secret', async () => {
  // Client registration: operator-chosen secrets (provision), a generated one, and a client_secret_jwt client whose
  // secret oidc-provider needs as an HMAC key (stored through the provider's own adapter, as registration would).
  const generated = /client_secret: (\S+)/.exec(await cliOk(d.server.env, ['client', 'add', 'gen-client', '--grant', 'client_credentials']))![1]!;
  const jwtSecret = 'jwt-client-secret-0123456789-abcdefghij';
  const provider = d.server.idms.provider();
  await (provider.Client as unknown as { adapter: Adapter }).adapter.upsert('jwt-client', {
    client_id: 'jwt-client',
    client_secret: jwtSecret,
    token_endpoint_auth_method: 'client_secret_jwt',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: '3gpp:seal:val_service',
  } as never);
  const jwtClient = await oidc.discovery(new URL(d.server.issuer), 'jwt-client', undefined, oidc.ClientSecretJwt(jwtSecret), insecure);
  expect((await oidc.clientCredentialsGrant(jwtClient, { resource: 'https://skms.example.org' })).access_token).toEqual(expect.any(String));
  const genClient = await oidc.discovery(new URL(d.server.issuer), 'gen-client', generated, undefined, insecure);
  expect((await oidc.clientCredentialsGrant(genClient, { resource: 'https://skms.example.org' })).access_token).toEqual(expect.any(String));

  // Sign-in through the form, keeping the browser: its session cookie and the interaction it went through.
  const browser = new Browser();
  const req = await authRequest(d.ue);
  const page = await browser.openAuthorization(req.url, req.redirectUri);
  if ('callback' in page) throw new Error('expected the login form');
  const interactionUid = new URL(page.loginUrl).pathname.split('/').pop()!;
  const { callback } = await browser.submitLogin(page.loginUrl, page.html, 'alice', PASSWORDS.alice, req.redirectUri);
  const code = new URL(callback!).searchParams.get('code')!;
  const session = browser.jar.get('_session')!;
  const tokens = await oidc.authorizationCodeGrant(d.ue, new URL(callback!), {
    pkceCodeVerifier: req.verifier,
    expectedState: req.state,
    expectedNonce: req.nonce,
  });
  const refreshed = await oidc.refreshTokenGrant(d.ue, tokens.refresh_token!);
  // A refresh repeating the granted scope gets the same JWT access token as one without (TS 33.434 A.5, RFC 6749 §6),
  // which userinfo accepts; JWT access tokens are never stored (the adapter's opaque-token format: test/adapter.test.ts).
  const forUserinfo = await oidc.refreshTokenGrant(d.ue, refreshed.refresh_token!, { scope: SCOPE });
  expect(isJwt(forUserinfo.access_token)).toBe(true);
  await expect(oidc.fetchUserInfo(d.ue, forUserinfo.access_token, 'alice')).resolves.toMatchObject({ sub: 'alice' });

  const values = {
    code,
    'refresh token (first)': tokens.refresh_token!,
    'refresh token (rotated)': refreshed.refresh_token!,
    'refresh token (current)': forUserinfo.refresh_token!,
    'access token (JWT)': forUserinfo.access_token,
    'session cookie value': session,
    'interaction uid': interactionUid,
    'client secret (client_secret_basic, code flow)': WEB_SECRET,
    'client secret (VAL server)': VAL_SERVER_SECRET,
    'client secret (generated)': generated,
    'client secret (client_secret_jwt)': jwtSecret,
  };
  for (const v of Object.values(values)) expect(v.length).toBeGreaterThanOrEqual(16);
  const text = await databaseText();
  // Control: the dump does hold what was stored (users, clients, this login's account).
  expect(text).toContain('val-server-1');
  expect(text).toContain('alice');
  expect(storedAmong(text, values)).toEqual([]);
});

describe('records stored before the change keep working (converted at start-up and by `migrate`)', () => {
  test('a refresh token, a code, a session and a client secret in the plain format work after `migrate`, and are no longer stored usable', async () => {
    const { db } = database;
    // The plain format is what the adapter wrote before: the value itself as id, jti in the payload, client_secret in clear.
    const tokens = await loginAndRedeem(d.ue, 'bob');
    const grantId = decodeJwt(tokens.access_token).grant_id as string;
    await db('oidc_payloads')
      .where({ kind: 'RefreshToken', grant_id: grantId })
      .update({ id: tokens.refresh_token!, payload: db.raw(`payload || jsonb_build_object('jti', ?::text)`, [tokens.refresh_token!]) });

    const pending = await login(d.ue, 'bob');
    const code = pending.callback.searchParams.get('code')!;
    const codeRow = await db('oidc_payloads').where({ kind: 'AuthorizationCode' }).whereNull('consumed_at').orderBy('expires_at', 'desc').first('id');
    await db('oidc_payloads')
      .where({ kind: 'AuthorizationCode', id: codeRow.id })
      .update({ id: code, payload: db.raw(`payload || jsonb_build_object('jti', ?::text)`, [code]) });

    const session = pending.browser.jar.get('_session')!;
    const sessionRow = await db('oidc_payloads').where({ kind: 'Session' }).whereRaw(`payload->>'accountId' = 'bob'`).orderBy('expires_at', 'desc').first('id');
    await db('oidc_payloads')
      .where({ kind: 'Session', id: sessionRow.id })
      .update({ id: session, payload: db.raw(`payload || jsonb_build_object('jti', ?::text)`, [session]) });

    await cliOk(d.server.env, ['client', 'add', 'legacy-client', '--secret', 'legacy-client-secret-1', '--grant', 'client_credentials']);
    await db('oidc_payloads')
      .where({ kind: 'Client', id: 'legacy-client' })
      .update({ payload: db.raw(`(payload - 'client_secret_hash') || jsonb_build_object('client_secret', 'legacy-client-secret-1')`) });

    const legacy = { 'refresh token': tokens.refresh_token!, code, 'session cookie value': session, 'client secret': 'legacy-client-secret-1' };
    // Control: the rows now hold the values, as a database from before the change would.
    expect(storedAmong(await databaseText(), legacy)).toEqual(Object.keys(legacy));

    expect(await cliOk(d.server.env, ['migrate'])).toMatch(/stored 4 token, session and client records in hashed form/);
    expect(storedAmong(await databaseText(), legacy)).toEqual([]);

    await expect(oidc.refreshTokenGrant(d.ue, tokens.refresh_token!)).resolves.toMatchObject({ access_token: expect.any(String) });
    await expect(
      oidc.authorizationCodeGrant(d.ue, pending.callback, { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce }),
    ).resolves.toMatchObject({ access_token: expect.any(String) });
    const legacyClient = await oidc.discovery(new URL(d.server.issuer), 'legacy-client', 'legacy-client-secret-1', undefined, insecure);
    await expect(oidc.clientCredentialsGrant(legacyClient, { resource: 'https://skms.example.org' })).resolves.toMatchObject({
      access_token: expect.any(String),
    });
    // The browser signed in before the change is still signed in: prompt=none gets a code, not login_required.
    const again = await authRequest(d.ue, { prompt: 'none', scope: 'openid' });
    const answer = await pending.browser.openAuthorization(again.url, again.redirectUri);
    expect('callback' in answer && new URL(answer.callback).searchParams.get('code')).toEqual(expect.any(String));
  });

  test('a server start converts them too', async () => {
    const tokens = await loginAndRedeem(d.ue, 'alice');
    const grantId = decodeJwt(tokens.access_token).grant_id as string;
    const { db } = database;
    await db('oidc_payloads')
      .where({ kind: 'RefreshToken', grant_id: grantId })
      .update({ id: tokens.refresh_token!, payload: db.raw(`payload || jsonb_build_object('jti', ?::text)`, [tokens.refresh_token!]) });
    expect(await databaseText()).toContain(tokens.refresh_token!);
    const second = await startTestServer(database);
    try {
      expect(await databaseText()).not.toContain(tokens.refresh_token!);
      const ue = await oidc.discovery(new URL(second.issuer), 'val-ue', undefined, oidc.None(), insecure);
      await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).resolves.toMatchObject({ access_token: expect.any(String) });
    } finally {
      await second.close();
    }
  });
});
