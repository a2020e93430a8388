// TS 33.434 annex A, the OpenID Connect profile for VAL, as a SIM-C (TS 24.547 clause 6) and a VAL server use it,
// through two independent certified client libraries: openid-client and oauth4webapi. One test per annex A clause.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as oidc from 'openid-client';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cli, cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { ssIpp, valServerClient } from './helpers/provisioning.ts';

const REDIRECT = 'http://127.0.0.1:8141/cb';
const SIM_C_SECRET = 'sim-c-secret-0123456789';
const PTT = '3gpp:mc:ptt_service'; // the VAL service specific scope MCPTT defines
const PASSWORDS: Record<string, string> = { alice: 'alice-password-1', bob: 'bob-password-1', erin: 'erin-password-1' };

let database: TestDatabase;
let server: TestServer;
let simC: oidc.Configuration;
let as: oauth.AuthorizationServer;
const insecure = { execute: [oidc.allowInsecureRequests] };

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database, { keyRefreshMs: 100 });
  const env = server.env;
  for (const [user, password] of Object.entries(PASSWORDS)) await cliOk(env, ['user', 'add', user, '--password', password]);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice', 'erin']);
  await cliOk(env, ['service', 'grant', 'v2x-7', 'alice', 'bob']);
  await cliOk(env, ['service', 'scope', 'mcptt-1', PTT]);
  // A SIM-C registered as A.3 describes (client ID, redirect URI), authenticating with client_secret_basic (A.4.2.4).
  await cliOk(env, ['client', 'add', 'sim-c', '--secret', SIM_C_SECRET, '--redirect-uri', REDIRECT]);
  await cliOk(env, ['client', 'add', 'sim-c-es256', '--secret', SIM_C_SECRET, '--redirect-uri', REDIRECT, '--id-token-alg', 'ES256']);
  await cliOk(env, ['resource', 'add', 'https://skms.example.org', '--scope', '3gpp:seal:val_service']);
  await cliOk(env, [
    'val-server',
    'add',
    'skm.example.org',
    '--client-id',
    'skm-c',
    '--secret',
    'skm-secret-0123456789',
    '--services',
    'mcptt-1',
    '--skey-prov',
  ]);
  await cliOk(env, ['val-server', 'add', 'mcx.example.org', '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1']);
  simC = await oidc.discovery(new URL(server.issuer), 'sim-c', SIM_C_SECRET, oidc.ClientSecretBasic(SIM_C_SECRET), insecure);
  as = await oauth.processDiscoveryResponse(
    new URL(server.issuer),
    await oauth.discoveryRequest(new URL(server.issuer), { [oauth.allowInsecureRequests]: true }),
  );
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const jwks = () => createRemoteJWKSet(new URL(`${server.issuer}/jwks`));

/** TS 33.434 A.4.2.2 / TS 24.547 6.2.2.1.1: exactly these parameters, no nonce and no prompt. */
async function annexARequest(config: oidc.Configuration, scope: string, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    response_type: 'code',
    scope,
    redirect_uri: REDIRECT,
    state,
    acr_values: '3gpp:acr:password',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  });
  return { url, verifier, state };
}

/** The annex A login of `user` through the form, redeemed per A.4.2.4 (client_secret_basic + PKCE, openid-client). */
async function annexALogin(user: string, scope = `openid ${PTT}`, config = simC) {
  const req = await annexARequest(config, scope);
  const callback = new URL(await new Browser().login(req.url, user, PASSWORDS[user]!, REDIRECT));
  return oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: req.verifier, expectedState: req.state });
}

async function verifyAccessToken(token: string, audience = 'urn:3gpp:seal'): Promise<JWTPayload> {
  return (await jwtVerify(token, jwks(), { issuer: server.issuer, audience, typ: 'at+jwt' })).payload;
}

describe('A.4.2 obtaining tokens with the authorization code flow', () => {
  test('A.4.2.2–A.4.2.5: the exact annex A authentication request, redeemed with client_secret_basic + PKCE, returns ID, access and refresh tokens', async () => {
    const req = await annexARequest(simC, `openid ${PTT}`);
    // A.4.2.2: nothing else is sent (no nonce, no prompt).
    expect([...req.url.searchParams.keys()].sort()).toEqual([
      'acr_values',
      'client_id',
      'code_challenge',
      'code_challenge_method',
      'redirect_uri',
      'response_type',
      'scope',
      'state',
    ]);
    const callback = new URL(await new Browser().login(req.url, 'alice', PASSWORDS.alice!, REDIRECT));
    // A.4.2.3: code and state (and iss, RFC 9207).
    expect(callback.searchParams.get('state')).toBe(req.state);
    expect(callback.searchParams.get('code')).toEqual(expect.any(String));

    // A.4.2.4: grant_type, code, redirect_uri, code_verifier; the client authenticates with client_secret_basic.
    const tokens = await oidc.authorizationCodeGrant(simC, callback, { pkceCodeVerifier: req.verifier, expectedState: req.state });
    // A.4.2.5: access token, refresh token (no offline_access, no prompt=consent), ID token, token type, lifetime.
    expect(tokens).toMatchObject({ token_type: 'bearer', expires_in: 300, refresh_token: expect.any(String), id_token: expect.any(String) });

    const id = tokens.claims()!;
    expect(id).toMatchObject({ iss: server.issuer, sub: 'alice', aud: 'sim-c', acr: '3gpp:acr:password', amr: ['pwd'], val_service_ids: ['mcptt-1', 'v2x-7'] });
    expect(id.nonce).toBeUndefined();
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('RS256');

    const at = await verifyAccessToken(tokens.access_token);
    expect(at).toMatchObject({ sub: 'alice', client_id: 'sim-c', scope: `openid ${PTT}`, val_service_ids: ['mcptt-1', 'v2x-7'] });
  });

  test('A.4.2.2: discovery offers acr_values_supported 3gpp:acr:password and the registered VAL service scopes', async () => {
    const meta = simC.serverMetadata();
    expect(meta.acr_values_supported).toEqual(['3gpp:acr:password']);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['openid', '3gpp:seal:val_service', PTT]));
    expect(meta.claims_parameter_supported).toBe(true);
    // A scope registered while the server runs is advertised at once.
    await cliOk(server.env, ['service', 'scope', 'v2x-7', '3gpp:v2x:service']);
    const fresh = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as { scopes_supported: string[] };
    expect(fresh.scopes_supported).toEqual(expect.arrayContaining([PTT, '3gpp:v2x:service']));
    expect((await cliOk(server.env, ['service', 'scopes'])).trim().split('\n')).toEqual([`mcptt-1\t${PTT}`, 'v2x-7\t3gpp:v2x:service']);
    await cliOk(server.env, ['service', 'scope', 'v2x-7', '3gpp:v2x:service', '--remove']);
    const after = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as { scopes_supported: string[] };
    expect(after.scopes_supported).not.toContain('3gpp:v2x:service');
  });

  test('A.4.2.2: an acr_values the server cannot satisfy is answered with the best it has; an essential one it cannot meet is unmet_authentication_requirements', async () => {
    const voluntary = await annexARequest(simC, 'openid', { acr_values: 'urn:example:acr:biometric 3gpp:acr:password' });
    const callback = new URL(await new Browser().login(voluntary.url, 'bob', PASSWORDS.bob!, REDIRECT));
    const tokens = await oidc.authorizationCodeGrant(simC, callback, { pkceCodeVerifier: voluntary.verifier, expectedState: voluntary.state });
    expect(tokens.claims()!.acr).toBe('3gpp:acr:password');

    // OIDC Core §5.5.1.1: an essential acr that cannot be met is a failed authentication, before any login page.
    const essential = await annexARequest(simC, 'openid', {
      claims: JSON.stringify({ id_token: { acr: { essential: true, values: ['urn:example:acr:biometric'] } } }),
    });
    essential.url.searchParams.delete('acr_values');
    const res = await fetch(essential.url, { redirect: 'manual' });
    const refused = new URL(res.headers.get('location')!);
    expect(refused.href.startsWith(REDIRECT)).toBe(true);
    expect(refused.searchParams.get('error')).toBe('unmet_authentication_requirements');
    expect(refused.searchParams.get('state')).toBe(essential.state);

    // An essential acr the password login meets is met.
    const met = await annexARequest(simC, 'openid', { claims: JSON.stringify({ id_token: { acr: { essential: true, values: ['3gpp:acr:password'] } } }) });
    met.url.searchParams.delete('acr_values');
    const ok = new URL(await new Browser().login(met.url, 'bob', PASSWORDS.bob!, REDIRECT));
    const metTokens = await oidc.authorizationCodeGrant(simC, ok, { pkceCodeVerifier: met.verifier, expectedState: met.state });
    expect(metTokens.claims()!.acr).toBe('3gpp:acr:password');
  });

  test('A.4.2.5: the same login through oauth4webapi (client_secret_basic + PKCE), ID token validated by the library', async () => {
    const client: oauth.Client = { client_id: 'sim-c' };
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint!);
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: 'sim-c',
      scope: `openid ${PTT}`,
      redirect_uri: REDIRECT,
      state,
      acr_values: '3gpp:acr:password',
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    })) {
      url.searchParams.set(k, v);
    }
    const callback = new URL(await new Browser().login(url, 'alice', PASSWORDS.alice!, REDIRECT));
    const params = oauth.validateAuthResponse(as, client, callback, state);
    const res = await oauth.authorizationCodeGrantRequest(as, client, oauth.ClientSecretBasic(SIM_C_SECRET), params, REDIRECT, verifier, {
      [oauth.allowInsecureRequests]: true,
    });
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ sub: 'alice', acr: '3gpp:acr:password', val_service_ids: ['mcptt-1', 'v2x-7'] });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ scope: `openid ${PTT}`, client_id: 'sim-c' });
  });
});

describe('A.4.2.5 refresh tokens of the VAL profile', () => {
  /** Logs in with `browser` (its session cookie kept), then ends that session as RP-initiated logout does. */
  async function loginThenLogout(scope: string, extra: Record<string, string> = {}) {
    const browser = new Browser();
    const req = await annexARequest(simC, scope, extra);
    const callback = new URL(await browser.login(req.url, 'alice', PASSWORDS.alice!, REDIRECT));
    const tokens = await oidc.authorizationCodeGrant(simC, callback, { pkceCodeVerifier: req.verifier, expectedState: req.state });
    const page = await browser.get(`${server.issuer}/session/end?client_id=sim-c&id_token_hint=${tokens.id_token}`);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(await page.text())?.[1];
    expect(xsrf).toEqual(expect.any(String));
    expect((await browser.post(`${server.issuer}/session/end/confirm`, { xsrf: xsrf!, logout: 'yes' })).status).toBeLessThan(400);
    return tokens;
  }

  test('A.4.2.5: without offline_access the refresh token belongs to the login: RP-initiated logout revokes it', async () => {
    const tokens = await loginThenLogout(`openid ${PTT}`);
    await expect(oidc.refreshTokenGrant(simC, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('A.4.2.5: offline_access with prompt=consent keeps its OIDC Core §11 meaning: the refresh token outlives the logout', async () => {
    const tokens = await loginThenLogout(`openid offline_access ${PTT}`, { prompt: 'consent' });
    expect((await oidc.refreshTokenGrant(simC, tokens.refresh_token!)).access_token).toEqual(expect.any(String));
  });
});

describe('A.2 VAL tokens', () => {
  test('A.2.1.2: the ID token carries val_service_ids with openid alone, acr and amr, sub = the VAL user ID', async () => {
    const tokens = await annexALogin('bob', 'openid');
    expect(tokens.claims()).toMatchObject({ sub: 'bob', val_user_id: 'bob', val_service_ids: ['v2x-7'], acr: '3gpp:acr:password', amr: ['pwd'] });
  });

  test('A.2.2.2: every access token carries scope and client_id (code, refresh, client_credentials with and without scope)', async () => {
    const login = await annexALogin('alice');
    const refreshed = await oidc.refreshTokenGrant(simC, login.refresh_token!);
    const mcx = await valServerClient(server, 'mcx', 'mcx-secret-0123456789');
    const withScope = await oidc.clientCredentialsGrant(mcx, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' });
    // RFC 6749 §3.3: without scope, the default is what the resource server offers this client.
    const withoutScope = await oidc.clientCredentialsGrant(mcx, { resource: 'https://skms.example.org' });
    expect(withoutScope.scope).toBe('3gpp:seal:val_service');
    for (const [token, clientId, audience] of [
      [login.access_token, 'sim-c', 'urn:3gpp:seal'],
      [refreshed.access_token, 'sim-c', 'urn:3gpp:seal'],
      [withScope.access_token, 'mcx', 'https://skms.example.org'],
      [withoutScope.access_token, 'mcx', 'https://skms.example.org'],
    ] as const) {
      const claims = await verifyAccessToken(token, audience);
      expect(claims).toMatchObject({ client_id: clientId, scope: expect.stringMatching(/\S/), exp: expect.any(Number), iss: server.issuer });
    }
  });

  test('A.2.2.2: a VAL service scope is granted only to a VAL user provisioned for that VAL service', async () => {
    // alice is provisioned for mcptt-1, whose specification defines 3gpp:mc:ptt_service; bob is not.
    const alice = await annexALogin('alice');
    expect((await verifyAccessToken(alice.access_token)).scope).toBe(`openid ${PTT}`);
    const bob = await annexALogin('bob');
    const bobClaims = await verifyAccessToken(bob.access_token);
    expect(bobClaims.scope).toBe('openid');
    expect(bobClaims.val_service_ids).toEqual(['v2x-7']);
    // At refresh, bob still cannot ask for it; provisioned later, the next login gets it.
    await expect(oidc.refreshTokenGrant(simC, bob.refresh_token!, { scope: `openid ${PTT}` })).rejects.toMatchObject({ error: 'invalid_scope' });
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'bob']);
    try {
      expect((await verifyAccessToken((await annexALogin('bob')).access_token)).scope).toBe(`openid ${PTT}`);
    } finally {
      await cliOk(server.env, ['service', 'revoke', 'mcptt-1', 'bob']);
    }
    // A client_credentials token never gets a VAL service scope (there is no VAL user).
    const mcx = await valServerClient(server, 'mcx', 'mcx-secret-0123456789');
    await expect(oidc.clientCredentialsGrant(mcx, { scope: PTT })).rejects.toMatchObject({ error: 'invalid_scope' });
  });

  test('A.2.2.3: SKeyProv is in the access tokens of a VAL server flagged --skey-prov, and in no other token', async () => {
    const skm = await valServerClient(server, 'skm-c', 'skm-secret-0123456789');
    const mcx = await valServerClient(server, 'mcx', 'mcx-secret-0123456789');
    const skmToken = await oidc.clientCredentialsGrant(skm, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' });
    expect((await verifyAccessToken(skmToken.access_token, 'https://skms.example.org')).SKeyProv).toBe(true);
    const mcxToken = await oidc.clientCredentialsGrant(mcx, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' });
    expect(await verifyAccessToken(mcxToken.access_token, 'https://skms.example.org')).not.toHaveProperty('SKeyProv');
    const user = await annexALogin('alice');
    expect(decodeJwt(user.access_token)).not.toHaveProperty('SKeyProv');
    expect(user.claims()).not.toHaveProperty('SKeyProv');

    // The flag is the operator's: cleared, the next token has no claim; set again, it has.
    await cliOk(server.env, ['val-server', 'update', 'skm.example.org', '--no-skey-prov']);
    expect(decodeJwt((await oidc.clientCredentialsGrant(skm, { resource: 'https://skms.example.org' })).access_token)).not.toHaveProperty('SKeyProv');
    await cliOk(server.env, ['val-server', 'update', 'mcx.example.org', '--skey-prov']);
    expect(decodeJwt((await oidc.clientCredentialsGrant(mcx, { resource: 'https://skms.example.org' })).access_token).SKeyProv).toBe(true);
    await cliOk(server.env, ['val-server', 'update', 'mcx.example.org', '--no-skey-prov']);
    expect(JSON.parse((await cliOk(server.env, ['val-server', 'list', '--json'])).trim().split('\n')[1]!)).toMatchObject({
      requesterIdentity: 'skm.example.org',
      skeyProv: false,
    });
  });

  test('A.2.1.2: sub never exceeds 255 bytes — a longer VAL user ID is refused at creation, import and provisioning', async () => {
    const atLimit = 'é'.repeat(127) + 'x'; // 255 bytes in UTF-8
    const over = 'é'.repeat(128); // 128 characters, 256 bytes
    await cliOk(server.env, ['user', 'add', atLimit, '--password', 'long-password-1']);
    const created = await cli(server.env, ['user', 'add', over, '--password', 'long-password-1']);
    expect(created).toMatchObject({ code: 1, stderr: 'seal-idms: invalid VAL user ID: must be at most 255 bytes in UTF-8\n' });

    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-a212-'));
    try {
      const file = path.join(dir, 'users.csv');
      await fs.writeFile(file, `val_user_id,password\nimport-ok,import-password-1\n${over},import-password-2\n`);
      const imported = await cli(server.env, ['user', 'import', file]);
      expect(imported).toMatchObject({ code: 0 });
      expect(imported.stdout).toContain('1 created, 0 updated, 1 rejected');
      expect(imported.stdout).toMatch(/line 3: .*255 bytes/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }

    const mcx = await valServerClient(server, 'mcx', 'mcx-secret-0123456789');
    const token = (await oidc.clientCredentialsGrant(mcx)).access_token;
    const res = await ssIpp(server, 'POST', '/configurations', '/configurations', {
      token,
      json: { valServerId: 'mcx.example.org', valSvcConf: [{ valServiceId: 'mcptt-1', idList: [{ valUserId: over }] }] },
      invalid: true,
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(/255 bytes/);
    expect(await database.db('val_users').where({ val_user_id: over }).first()).toBeUndefined();
    expect(await database.db('val_service_users').where({ val_user_id: over }).first()).toBeUndefined();
  });
});

describe('A.5 refreshing an access token', () => {
  test('A.5.2–A.5.3: a refresh with and without the originally granted scope both return an RFC 9068 JWT for the VAL resource', async () => {
    const login = await annexALogin('alice');
    // authlib's default: the original scope repeated (RFC 6749 §6: the same as sending none).
    const withScope = await oidc.refreshTokenGrant(simC, login.refresh_token!, { scope: `openid ${PTT}` });
    const withoutScope = await oidc.refreshTokenGrant(simC, withScope.refresh_token!);
    for (const tokens of [withScope, withoutScope]) {
      expect(tokens).toMatchObject({ token_type: 'bearer', expires_in: 300, refresh_token: expect.any(String) });
      expect(decodeProtectedHeader(tokens.access_token).typ).toBe('at+jwt');
      expect(await verifyAccessToken(tokens.access_token)).toMatchObject({ sub: 'alice', client_id: 'sim-c', scope: `openid ${PTT}` });
    }
    expect(withoutScope.refresh_token).not.toBe(withScope.refresh_token);
  });

  test('A.5.2–A.5.3: the refresh through oauth4webapi, repeating the scope', async () => {
    const login = await annexALogin('alice');
    const client: oauth.Client = { client_id: 'sim-c' };
    const res = await oauth.refreshTokenGrantRequest(as, client, oauth.ClientSecretBasic(SIM_C_SECRET), login.refresh_token!, {
      additionalParameters: { scope: `openid ${PTT}` },
      [oauth.allowInsecureRequests]: true,
    });
    const tokens = await oauth.processRefreshTokenResponse(as, client, res);
    expect(await verifyAccessToken(tokens.access_token)).toMatchObject({ scope: `openid ${PTT}` });
  });

  test("A.5.3: a disabled VAL user's refresh is invalid_grant", async () => {
    const login = await annexALogin('erin');
    await cliOk(server.env, ['user', 'disable', 'erin']);
    try {
      await expect(oidc.refreshTokenGrant(simC, login.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    } finally {
      await cliOk(server.env, ['user', 'enable', 'erin']);
    }
  });
});

describe('userinfo with the access token of the login (OIDC Core §5.3)', () => {
  test('openid-client fetchUserInfo accepts the login access token (a JWT for the VAL resource)', async () => {
    const login = await annexALogin('alice');
    const info = await oidc.fetchUserInfo(simC, login.access_token, 'alice');
    expect(info).toEqual({ sub: 'alice', val_user_id: 'alice', val_service_ids: ['mcptt-1', 'v2x-7'] });
  });

  test('oauth4webapi userInfoRequest accepts it too, and the refreshed one', async () => {
    const login = await annexALogin('alice');
    const client: oauth.Client = { client_id: 'sim-c' };
    for (const token of [login.access_token, (await oidc.refreshTokenGrant(simC, login.refresh_token!)).access_token]) {
      const res = await oauth.userInfoRequest(as, client, token, { [oauth.allowInsecureRequests]: true });
      expect(await oauth.processUserInfoResponse(as, client, 'alice', res)).toMatchObject({ sub: 'alice', val_service_ids: ['mcptt-1', 'v2x-7'] });
    }
  });

  test("refused: a client_credentials token, a token without openid, a revoked token, a disabled user's token", async () => {
    const me = (token: string) => fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
    const mcx = await valServerClient(server, 'mcx', 'mcx-secret-0123456789');
    const clientToken = (await oidc.clientCredentialsGrant(mcx, { resource: 'https://skms.example.org' })).access_token;
    expect((await me(clientToken)).headers.get('www-authenticate')).toMatch(/invalid_token/);

    // A login that did not ask for openid (a plain OAuth 2.0 client of the VAL resource; acr_values needs openid).
    const req = await annexARequest(simC, '3gpp:seal:val_service');
    req.url.searchParams.delete('acr_values');
    const callback = new URL(await new Browser().login(req.url, 'bob', PASSWORDS.bob!, REDIRECT));
    const noOpenid = await oidc.authorizationCodeGrant(simC, callback, { pkceCodeVerifier: req.verifier, expectedState: req.state });
    expect(decodeJwt(noOpenid.access_token).scope).toBe('3gpp:seal:val_service');
    const res = await me(noOpenid.access_token);
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toMatch(/insufficient_scope/);

    const revoked = await annexALogin('alice');
    await oidc.tokenRevocation(simC, revoked.access_token);
    expect((await me(revoked.access_token)).status).toBe(401);

    const erin = await annexALogin('erin');
    await cliOk(server.env, ['user', 'disable', 'erin']);
    try {
      expect((await me(erin.access_token)).status).toBe(401);
    } finally {
      await cliOk(server.env, ['user', 'enable', 'erin']);
    }
  });
});

describe('A.7 token validation', () => {
  test('A.7.1: ID tokens are RS256 by default; a client registered for ES256, PS256 or EdDSA gets that, verifiable with the JWKS', async () => {
    const jwksDoc = (await (await fetch(`${server.issuer}/jwks`)).json()) as { keys: { alg: string }[] };
    expect(jwksDoc.keys.map((k) => k.alg)).toEqual(expect.arrayContaining(['RS256', 'ES256', 'PS256', 'EdDSA']));

    const rs = await annexALogin('alice');
    expect(decodeProtectedHeader(rs.id_token!).alg).toBe('RS256');
    await jwtVerify(rs.id_token!, jwks(), { issuer: server.issuer, audience: 'sim-c', algorithms: ['RS256'] });

    const es256 = await oidc.discovery(
      new URL(server.issuer),
      'sim-c-es256',
      { client_secret: SIM_C_SECRET, id_token_signed_response_alg: 'ES256' },
      oidc.ClientSecretBasic(SIM_C_SECRET),
      insecure,
    );
    const es = await annexALogin('alice', `openid ${PTT}`, es256);
    expect(decodeProtectedHeader(es.id_token!).alg).toBe('ES256');
    await jwtVerify(es.id_token!, jwks(), { issuer: server.issuer, audience: 'sim-c-es256', algorithms: ['ES256'] });

    for (const alg of ['PS256', 'EdDSA'] as const) {
      await cliOk(server.env, ['client', 'update', 'sim-c-es256', '--id-token-alg', alg]);
      const config = await oidc.discovery(
        new URL(server.issuer),
        'sim-c-es256',
        { client_secret: SIM_C_SECRET, id_token_signed_response_alg: alg },
        oidc.ClientSecretBasic(SIM_C_SECRET),
        insecure,
      );
      const tokens = await annexALogin('alice', 'openid', config);
      expect(decodeProtectedHeader(tokens.id_token!).alg).toBe(alg);
      await jwtVerify(tokens.id_token!, jwks(), { issuer: server.issuer, audience: 'sim-c-es256', algorithms: [alg] });
    }
    const bad = await cli(server.env, ['client', 'update', 'sim-c-es256', '--id-token-alg', 'HS256']);
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringContaining('RS256, ES256, PS256, EdDSA') });
  });

  test('A.7.1: key rotation renews a key for every ID token algorithm, and tokens signed before still verify', async () => {
    const before = await annexALogin('alice');
    const oldKids = new Set((await database.db('signing_keys').where({ status: 'active' }).pluck('kid')) as string[]);
    await cliOk(server.env, ['keys', 'rotate']);
    const active = (await database.db('signing_keys').where({ status: 'active' }).select('alg', 'kid')) as { alg: string; kid: string }[];
    expect(active.map((k) => k.alg).sort()).toEqual(['ES256', 'EdDSA', 'PS256', 'RS256']);
    expect(active.some((k) => oldKids.has(k.kid))).toBe(false);
    await server.idms.refreshKeys();
    const after = await annexALogin('alice');
    expect(decodeProtectedHeader(after.id_token!).kid).not.toBe(decodeProtectedHeader(before.id_token!).kid);
    await jwtVerify(before.id_token!, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { issuer: server.issuer, audience: 'sim-c' });
  });
});

describe('provisioning token by scope (TS 29.549 client credentials)', () => {
  test('client_credentials with scope 3gpp:seal:idm:provisioning alone is for the ss-ipp API and accepted there (oauth4webapi)', async () => {
    const client: oauth.Client = { client_id: 'mcx' };
    const res = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic('mcx-secret-0123456789'),
      { scope: '3gpp:seal:idm:provisioning' },
      { [oauth.allowInsecureRequests]: true },
    );
    const { access_token: token } = await oauth.processClientCredentialsResponse(as, client, res);
    expect(decodeJwt(token).aud).toBe(`${server.config.apiRoot}/ss-ipp/v1`);
    expect((await ssIpp(server, 'GET', '/configurations', '/configurations', { token })).status).toBe(200);
  });
});
