// What the code redemption checks besides single use, now that the code, its grant, its session and the grant's
// account are read in one statement (issue 16): each of them, gone or changed between the login and the redemption,
// still refuses the code.
import * as oidc from 'openid-client';
import { cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { login, provision, type Deployment } from './support.ts';

// Without offline_access the code (and its tokens) belong to the login's session: the redemption checks the session.
const SESSION_SCOPE = { scope: 'openid 3gpp:seal:val_service' };

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

async function loggedIn() {
  const { callback, verifier, state, nonce } = await login(d.ue, 'bob', SESSION_SCOPE);
  return () => oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

/** Deletes the latest record of `kind`: the one this test's login wrote (tests run one at a time). */
const deleteNewest = (kind: string) =>
  database.db.raw(`delete from oidc_payloads where ctid in (select ctid from oidc_payloads where kind = ? order by expires_at desc limit 1)`, [kind]);

test('control: the code is redeemed, with the VAL service IDs of the account', async () => {
  const redeem = await loggedIn();
  const tokens = await redeem();
  expect(tokens.claims()).toMatchObject({ sub: 'bob', val_service_ids: ['mcptt-1'] });
});

test('the session of the login ended before the redemption: invalid_grant', async () => {
  const redeem = await loggedIn();
  await deleteNewest('Session');
  await expect(redeem()).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });
});

test('the grant was revoked before the redemption: invalid_grant', async () => {
  const redeem = await loggedIn();
  await deleteNewest('Grant');
  await expect(redeem()).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });
});

test('the VAL user was disabled before the redemption: invalid_grant; enabled again, a new login works', async () => {
  const redeem = await loggedIn();
  await cliOk(d.server.env, ['user', 'disable', 'bob']);
  try {
    await expect(redeem()).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });
  } finally {
    await cliOk(d.server.env, ['user', 'enable', 'bob']);
  }
  await expect((await loggedIn())()).resolves.toMatchObject({ access_token: expect.any(String) });
});

test('the VAL user lost every VAL service before the redemption: access_denied, no tokens', async () => {
  const redeem = await loggedIn();
  await cliOk(d.server.env, ['service', 'revoke', 'mcptt-1', 'bob']);
  try {
    await expect(redeem()).rejects.toMatchObject({ error: 'access_denied' });
  } finally {
    await cliOk(d.server.env, ['service', 'grant', 'mcptt-1', 'bob']);
  }
});
