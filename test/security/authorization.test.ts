// Authorization of clients (issue 10 items 6, 7, 10): a VAL server's tokens and introspection end with its client or
// its SLA; introspection answers only about tokens meant for the caller (RFC 7662 §4); client tokens are recognised by
// how they were issued; scopes are bound to the client (granted = requested ∩ registered ∩ resource server's).
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { cli, cliOk } from '../helpers/cli.ts';
import { Browser } from '../helpers/browser.ts';
import { pkceAuthorizationRequest } from '../helpers/authorize.ts';
import { call, provisioningToken, valServerClient, type Problem } from '../helpers/provisioning.ts';
import { exchangeForPartner, tempDir, TOKEN_EXCHANGE, writeTemp } from '../helpers/federation.ts';
import { exportJWK, generateKeyPair } from 'jose';
import { basic, insecure, postForm } from './support.ts';

const REDIRECT = 'http://127.0.0.1:8123/cb';
const SKMS = 'urn:skms';
const PARTNER = 'https://idms.partner.example.org';
const PASSWORD = 'correct-horse-1';
const SECRET = (clientId: string) => `${clientId}-secret-0123456789`;

let database: TestDatabase;
let server: TestServer;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  env = server.env;
  // "ue-twin" is both a VAL user ID and the ID of the public client that user signs in with.
  for (const user of ['alice', 'ue-twin']) await cliOk(env, ['user', 'add', user, '--password', PASSWORD]);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice', 'ue-twin']);
  await cliOk(env, ['resource', 'add', SKMS, '--scope', 'skms:admin skms:read']);
  const code = ['--public', '--redirect-uri', REDIRECT];
  await cliOk(env, ['client', 'add', 'val-ue', ...code]);
  await cliOk(env, ['client', 'add', 'ue-twin', ...code]);
  await cliOk(env, [
    'client',
    'add',
    'skms-ue',
    ...code,
    '--grant',
    'authorization_code',
    '--grant',
    'refresh_token',
    '--grant',
    TOKEN_EXCHANGE,
    '--scope',
    'openid offline_access 3gpp:seal:val_service skms:read',
  ]);
  for (const vs of ['vs-a', 'vs-b', 'vs-gone', 'vs-off', 'vs-late']) {
    await cliOk(env, ['val-server', 'add', `${vs}.example.org`, '--client-id', vs, '--secret', SECRET(vs), '--services', 'mcptt-1']);
  }
  // The S-KMS: a confidential client that operates the resource server urn:skms.
  await cliOk(env, ['client', 'add', 'skms', '--secret', SECRET('skms'), '--grant', 'client_credentials', '--resource-server', SKMS]);
  await cliOk(env, ['client', 'add', 'plain-cc', '--secret', SECRET('plain-cc'), '--grant', 'client_credentials']);
  const { publicKey } = await generateKeyPair('ES256');
  await cliOk(env, [
    'partner',
    'add',
    PARTNER,
    '--jwks',
    writeTemp(tempDir(), 'partner.jwks.json', JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] })),
  ]);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const confidential = (clientId: string) => valServerClient(server, clientId, SECRET(clientId));
const publicClient = (clientId: string) => oidc.discovery(new URL(server.issuer), clientId, undefined, oidc.None(), insecure);

/** The token endpoint's raw answer to client_credentials (status and JSON body), without a client library's checks. */
async function clientCredentials(clientId: string, form: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await postForm(`${server.issuer}/token`, { grant_type: 'client_credentials', ...form }, { authorization: basic(clientId, SECRET(clientId)) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function introspect(clientId: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await postForm(`${server.issuer}/token/introspection`, { token }, { authorization: basic(clientId, SECRET(clientId)) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function userTokens(client: oidc.Configuration, user: string, extra: Record<string, string> = {}) {
  const { url, verifier, state, nonce } = await pkceAuthorizationRequest(client, REDIRECT, extra);
  const callback = await new Browser().login(url, user, PASSWORD, REDIRECT);
  return oidc.authorizationCodeGrant(client, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

const readConfig = (token: string) => call(server, 'GET', '/configurations/mcptt-1', { token });
const writeConfig = (token: string, requesterIdentity: string) =>
  call(server, 'POST', '/configurations', { token, json: { requesterIdentity, valServiceInfos: [{ valServiceId: 'mcptt-1', valUserIds: ['alice'] }] } });
const cause = (res: { body: unknown }) => (res.body as Problem).cause;

describe('item 10: scopes are bound to the client (RFC 6749 §3.3, §5.2)', () => {
  test('client_credentials: a resource server scope the client is not registered for is invalid_scope', async () => {
    // The probe's case: registered for 3gpp:seal:val_service only, asking the S-KMS's admin scope.
    const refused = await clientCredentials('plain-cc', { resource: SKMS, scope: 'skms:admin' });
    expect(refused).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
    // A VAL server (registered for the provisioning and VAL service scopes) is refused the same way.
    expect(await clientCredentials('vs-a', { resource: SKMS, scope: 'skms:read' })).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
    // Without a scope the S-KMS token carries none of the resource server's scopes.
    const bare = await clientCredentials('plain-cc', { resource: SKMS });
    expect(bare.status).toBe(200);
    expect(decodeJwt(bare.body.access_token as string).scope).toBeUndefined();
  });

  test('client update --scope grants exactly requested ∩ registered ∩ resource server scopes', async () => {
    await cliOk(env, ['client', 'update', 'plain-cc', '--scope', '3gpp:seal:val_service skms:read']);
    expect((await cliOk(env, ['client', 'list'])).split('\n').find((l) => l.startsWith('plain-cc\t'))).toBe(
      'plain-cc\tconfidential\tclient_credentials\t3gpp:seal:val_service skms:read',
    );
    const granted = await clientCredentials('plain-cc', { resource: SKMS, scope: 'skms:read' });
    expect(granted.status).toBe(200);
    expect(granted.body.scope).toBe('skms:read');
    expect(decodeJwt(granted.body.access_token as string)).toMatchObject({ aud: SKMS, scope: 'skms:read' });
    // One unregistered scope among registered ones refuses the whole request.
    expect(await clientCredentials('plain-cc', { resource: SKMS, scope: 'skms:read skms:admin' })).toMatchObject({
      status: 400,
      body: { error: 'invalid_scope' },
    });
    // Registered but not a scope of the resource asked for: not granted (dropped), as RFC 8707 §2.2 narrows to the resource.
    const other = await clientCredentials('plain-cc', { scope: 'skms:read' });
    expect(other.status).toBe(200);
    expect(decodeJwt(other.body.access_token as string)).toMatchObject({ aud: server.config.defaultResource });
    expect(decodeJwt(other.body.access_token as string).scope).toBeUndefined();
    // An unknown scope is not registered either.
    expect(await clientCredentials('plain-cc', { resource: SKMS, scope: 'no-such-scope' })).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
  });

  test('client update refuses an unknown client and a malformed --resource-server', async () => {
    expect(await cli(env, ['client', 'update', 'no-such-client', '--scope', 'openid'])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('no client no-such-client'),
    });
    expect(await cli(env, ['client', 'update', 'plain-cc', '--resource-server', 'not a uri'])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('--resource-server must be an absolute URI'),
    });
  });

  test('authorization code: an unregistered resource server scope is invalid_scope at the authorization endpoint', async () => {
    const ue = await publicClient('val-ue');
    const { url } = await pkceAuthorizationRequest(ue, REDIRECT, { resource: SKMS, scope: 'openid skms:admin' });
    const res = await fetch(url, { redirect: 'manual' });
    expect([302, 303]).toContain(res.status);
    const location = new URL(res.headers.get('location')!, server.issuer);
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(location.searchParams.get('error')).toBe('invalid_scope');
  });

  test('authorization code and refresh: a registered scope is granted; refresh cannot add one, and loses one the client no longer has', async () => {
    const ue = await publicClient('skms-ue');
    const tokens = await userTokens(ue, 'alice', { resource: SKMS, scope: 'openid offline_access skms:read' });
    // TS 33.434 A.2.2.2 (issue 13): a VAL user's token carries openid among the granted scopes.
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: SKMS, scope: 'openid skms:read', sub: 'alice' });
    // RFC 6749 §6: a refresh may not ask for more than the original grant.
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!, { scope: 'skms:admin' })).rejects.toMatchObject({ error: 'invalid_scope' });

    // The operator takes skms:read away: the next refresh no longer grants it, and asking for it is invalid_scope.
    await cliOk(env, ['client', 'update', 'skms-ue', '--scope', 'openid offline_access 3gpp:seal:val_service']);
    const refreshed = await oidc.refreshTokenGrant(ue, tokens.refresh_token!);
    expect(decodeJwt(refreshed.access_token).aud).toBe(SKMS);
    expect(String(decodeJwt(refreshed.access_token).scope ?? '')).not.toContain('skms:read');
    await expect(oidc.refreshTokenGrant(ue, refreshed.refresh_token!, { scope: 'skms:read' })).rejects.toMatchObject({ error: 'invalid_scope' });
    await cliOk(env, ['client', 'update', 'skms-ue', '--scope', 'openid offline_access 3gpp:seal:val_service skms:read']);
  });

  test('token exchange at the home side: a scope the client lacks is refused or not granted', async () => {
    const ue = await publicClient('skms-ue');
    const tokens = await userTokens(ue, 'alice');
    let body: Record<string, unknown> | undefined;
    try {
      body = (await exchangeForPartner(ue, tokens.access_token, PARTNER, { scope: 'skms:admin' })) as unknown as Record<string, unknown>;
    } catch (err) {
      expect(err).toMatchObject({ error: 'invalid_scope' });
      return;
    }
    // Granted anyway: then neither the response nor the security token carries the scope.
    expect(body.scope).toBeUndefined();
    expect(decodeJwt(body.access_token as string).scope).toBeUndefined();
  });
});

describe("item 6: a VAL server's tokens and introspection end with its client or its SLA", () => {
  test('a disabled VAL server gets no client_credentials token (unauthorized_client); enabled again, it does', async () => {
    expect((await clientCredentials('vs-off')).status).toBe(200);
    await cliOk(env, ['val-server', 'disable', 'vs-off.example.org']);
    for (const form of [{}, { resource: `${server.issuer}/ss-idms-provisioning/v1`, scope: '3gpp:seal:idm:provisioning' }] as Record<string, string>[]) {
      expect(await clientCredentials('vs-off', form)).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
    }
    // A client that is not a VAL server is not affected by SLA rules.
    expect((await clientCredentials('skms')).status).toBe(200);
    await cliOk(env, ['val-server', 'enable', 'vs-off.example.org']);
    expect((await clientCredentials('vs-off')).status).toBe(200);
  });

  test('a VAL server whose SLA expired gets no client_credentials token', async () => {
    await cliOk(env, ['val-server', 'update', 'vs-late.example.org', '--valid-until', '2020-01-01']);
    expect(await clientCredentials('vs-late')).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
    await cliOk(env, ['val-server', 'update', 'vs-late.example.org', '--valid-until', 'none']);
    expect((await clientCredentials('vs-late')).status).toBe(200);
  });

  test('provisioning: its existing token stops for reads and writes when disabled (403), expired (403) or its client removed (401)', async () => {
    const offToken = await provisioningToken(await confidential('vs-off'), server);
    const lateToken = await provisioningToken(await confidential('vs-late'), server);
    const goneToken = await provisioningToken(await confidential('vs-gone'), server);
    expect((await readConfig(offToken)).status).toBe(200);
    expect((await writeConfig(goneToken, 'vs-gone.example.org')).status).toBe(200);

    await cliOk(env, ['val-server', 'disable', 'vs-off.example.org']);
    await cliOk(env, ['val-server', 'update', 'vs-late.example.org', '--valid-until', '2020-01-01']);
    await cliOk(env, ['client', 'remove', 'vs-gone']);
    try {
      for (const res of [await readConfig(offToken), await writeConfig(offToken, 'vs-off.example.org')])
        expect([res.status, cause(res)]).toEqual([403, 'VAL_SERVER_DISABLED']);
      for (const res of [await readConfig(lateToken), await writeConfig(lateToken, 'vs-late.example.org')])
        expect([res.status, cause(res)]).toEqual([403, 'SLA_EXPIRED']);
      for (const res of [await readConfig(goneToken), await writeConfig(goneToken, 'vs-gone.example.org')]) {
        expect([res.status, cause(res)]).toEqual([401, 'TOKEN_INVALID']);
        expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
      }
    } finally {
      await cliOk(env, ['val-server', 'enable', 'vs-off.example.org']);
      await cliOk(env, ['val-server', 'update', 'vs-late.example.org', '--valid-until', 'none']);
    }
    // Back in force: the same token works again.
    expect((await readConfig(offToken)).status).toBe(200);
  });

  test('introspection: a removed VAL server is invalid_client; a disabled or expired one learns nothing (active false)', async () => {
    const user = (await userTokens(await publicClient('val-ue'), 'alice')).access_token;
    expect((await introspect('vs-b', user)).body).toMatchObject({ active: true, sub: 'alice' });

    await cliOk(env, ['val-server', 'disable', 'vs-b.example.org']);
    expect(await introspect('vs-b', user)).toEqual({ status: 200, body: { active: false } });
    await cliOk(env, ['val-server', 'enable', 'vs-b.example.org']);
    await cliOk(env, ['val-server', 'update', 'vs-b.example.org', '--valid-until', '2020-01-01']);
    expect(await introspect('vs-b', user)).toEqual({ status: 200, body: { active: false } });
    await cliOk(env, ['val-server', 'update', 'vs-b.example.org', '--valid-until', 'none']);
    expect((await introspect('vs-b', user)).body.active).toBe(true);

    await cliOk(env, ['val-server', 'add', 'vs-removed.example.org', '--client-id', 'vs-removed', '--secret', SECRET('vs-removed'), '--services', 'mcptt-1']);
    expect((await introspect('vs-removed', user)).body.active).toBe(true);
    await cliOk(env, ['client', 'remove', 'vs-removed']);
    expect(await introspect('vs-removed', user)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });

  test('the tokens of a disabled VAL server are inactive for the resource server that introspects them', async () => {
    const forSkms = (await clientCredentials('vs-off', { resource: SKMS })).body.access_token as string;
    expect((await introspect('skms', forSkms)).body).toMatchObject({ active: true, client_id: 'vs-off', aud: SKMS });
    await cliOk(env, ['val-server', 'disable', 'vs-off.example.org']);
    try {
      expect((await introspect('skms', forSkms)).body).toEqual({ active: false });
    } finally {
      await cliOk(env, ['val-server', 'enable', 'vs-off.example.org']);
    }
  });
});

describe('RFC 7662 §4: introspection answers only about tokens meant for the caller', () => {
  test("a VAL server cannot introspect another VAL server's provisioning or client_credentials token", async () => {
    const provisioningOfB = await provisioningToken(await confidential('vs-b'), server);
    const defaultOfB = (await clientCredentials('vs-b')).body.access_token as string;
    for (const token of [provisioningOfB, defaultOfB]) {
      expect(await introspect('vs-a', token)).toEqual({ status: 200, body: { active: false } });
      // Its own client sees them.
      expect((await introspect('vs-b', token)).body).toMatchObject({ active: true, client_id: 'vs-b' });
    }
  });

  test('a resource server sees the tokens issued for it; a VAL server does not see tokens for another resource', async () => {
    const ue = await publicClient('skms-ue');
    const forSkms = (await userTokens(ue, 'alice', { resource: SKMS, scope: 'openid skms:read' })).access_token;
    expect((await introspect('skms', forSkms)).body).toMatchObject({ active: true, aud: SKMS, sub: 'alice' });
    expect(await introspect('vs-a', forSkms)).toEqual({ status: 200, body: { active: false } });
    const ccForSkms = (await clientCredentials('vs-a', { resource: SKMS })).body.access_token as string;
    expect((await introspect('skms', ccForSkms)).body).toMatchObject({ active: true, client_id: 'vs-a' });
    expect(await introspect('vs-b', ccForSkms)).toEqual({ status: 200, body: { active: false } });
  });

  test("a VAL server may not introspect a user's refresh token", async () => {
    const tokens = await userTokens(await publicClient('skms-ue'), 'alice');
    expect(await introspect('vs-a', tokens.refresh_token!)).toEqual({ status: 200, body: { active: false } });
  });
});

describe('item 7: client tokens are recognised by how they were issued, not by sub = client_id', () => {
  test('a user whose VAL user ID equals the client ID is a user: disabled, the token is inactive', async () => {
    const twin = await userTokens(await publicClient('ue-twin'), 'ue-twin');
    const claims = decodeJwt(twin.access_token);
    expect(claims).toMatchObject({ sub: 'ue-twin', client_id: 'ue-twin' });
    expect(claims.gty).toBeUndefined();
    expect((await introspect('vs-a', twin.access_token)).body).toMatchObject({ active: true, sub: 'ue-twin' });
    await cliOk(env, ['user', 'disable', 'ue-twin']);
    try {
      expect(await introspect('vs-a', twin.access_token)).toEqual({ status: 200, body: { active: false } });
    } finally {
      await cliOk(env, ['user', 'enable', 'ue-twin']);
    }
  });

  test("client_credentials tokens carry gty; a VAL server's token is its own at the provisioning API", async () => {
    const token = await provisioningToken(await confidential('vs-a'), server);
    expect(decodeJwt(token)).toMatchObject({ sub: 'vs-a', client_id: 'vs-a', gty: 'client_credentials' });
    expect((await readConfig(token)).status).toBe(200);
  });
});
