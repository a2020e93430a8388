// IM-UU user authentication end to end with a certified OIDC client (openid-client 6): code + PKCE, tokens, claims.
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { LOGIN_SCOPE, pkceAuthorizationRequest } from './helpers/authorize.ts';

const REDIRECT = 'http://127.0.0.1:8123/cb';
const SCOPE = LOGIN_SCOPE;

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;
let valServer: oidc.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database, { keyRefreshMs: 100 });
  const env = server.env;
  await cliOk(env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(env, ['user', 'add', 'bob', '--password', 'bob-password-1']);
  await cliOk(env, ['user', 'add', 'carol', '--password', 'carol-password-1']);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice', 'bob']);
  await cliOk(env, ['service', 'grant', 'v2x-7', 'alice']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT, '--name', 'MCPTT client']);
  await cliOk(env, ['client', 'add', 'val-server-1', '--secret', 'val-server-secret-1', '--grant', 'client_credentials']);
  await cliOk(env, ['resource', 'add', 'https://skms.example.org', '--scope', '3gpp:seal:val_service']);
  await cliOk(env, ['resource', 'add', 'https://gms.example.org', '--alg', 'RS256']);

  const opts = { execute: [oidc.allowInsecureRequests] };
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), opts);
  valServer = await oidc.discovery(new URL(server.issuer), 'val-server-1', 'val-server-secret-1', undefined, opts);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

async function login(user: string, password: string, extra: Record<string, string> = {}) {
  const { url, verifier, state, nonce } = await pkceAuthorizationRequest(ue, REDIRECT, extra);
  const callback = await new Browser().login(url, user, password, REDIRECT);
  return { callback: new URL(callback), verifier, state, nonce };
}

async function loginAndRedeem(user: string, password: string, extra: Record<string, string> = {}) {
  const { callback, verifier, state, nonce } = await login(user, password, extra);
  return oidc.authorizationCodeGrant(ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

const jwks = () => createRemoteJWKSet(new URL(`${server.issuer}/jwks`));

describe('authorization code + PKCE login', () => {
  test('discovery advertises the DESIGN profile', () => {
    const meta = ue.serverMetadata();
    expect(meta.issuer).toBe(server.issuer);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.response_types_supported).toEqual(['code']);
    expect(meta.authorization_response_iss_parameter_supported).toBe(true);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['openid', 'offline_access', '3gpp:seal:val_service']));
    expect(meta.introspection_endpoint).toBeDefined();
    expect(meta.revocation_endpoint).toBeDefined();
  });

  test('login returns ID, access and refresh tokens carrying the VAL service IDs', async () => {
    const tokens = await loginAndRedeem('alice', 'alice-password-1');
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(tokens.expires_in).toBe(300);

    const id = tokens.claims()!;
    expect(id.sub).toBe('alice');
    expect(id.val_user_id).toBe('alice');
    expect(id.val_service_ids).toEqual(['mcptt-1', 'v2x-7']);
    expect(id.amr).toEqual(['pwd']);

    // RFC 9068 access token for the default resource, signed ES256.
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { issuer: server.issuer, audience: 'urn:3gpp:seal', typ: 'at+jwt' });
    // TS 33.434 A.2.2.2: the granted scopes, openid among them (issue 13).
    expect(payload).toMatchObject({ sub: 'alice', client_id: 'val-ue', val_service_ids: ['mcptt-1', 'v2x-7'], scope: 'openid 3gpp:seal:val_service' });
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload.jti).toEqual(expect.any(String));
  });

  test('the authorization response carries iss (RFC 9207) and state', async () => {
    const { callback, state } = await login('bob', 'bob-password-1');
    expect(callback.searchParams.get('iss')).toBe(server.issuer);
    expect(callback.searchParams.get('state')).toBe(state);
    expect(callback.searchParams.get('code')).toEqual(expect.any(String));
  });

  test("a requested resource becomes the access token audience, with that resource server's algorithm", async () => {
    const tokens = await loginAndRedeem('bob', 'bob-password-1', { resource: 'https://gms.example.org' });
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'RS256' });
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { audience: 'https://gms.example.org' });
    expect(payload.val_service_ids).toEqual(['mcptt-1']);
  });

  test('a user provisioned for no VAL service gets access_denied, not empty tokens', async () => {
    const { callback } = await login('carol', 'carol-password-1');
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('code')).toBeNull();
  });

  test('an unknown resource is refused with invalid_target', async () => {
    const url = oidc.buildAuthorizationUrl(ue, {
      redirect_uri: REDIRECT,
      scope: SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      resource: 'https://evil.example.org',
    });
    const res = await fetch(url, { redirect: 'manual' });
    expect(new URL(res.headers.get('location')!).searchParams.get('error')).toBe('invalid_target');
  });
});

describe('refresh tokens', () => {
  test('rotate on every use and carry current VAL services', async () => {
    const first = await loginAndRedeem('bob', 'bob-password-1');
    await cliOk(server.env, ['service', 'grant', 'rail-3', 'bob']);
    const second = await oidc.refreshTokenGrant(ue, first.refresh_token!);
    expect(second.refresh_token).toBeDefined();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    const { payload } = await jwtVerify(second.access_token, jwks(), { audience: 'urn:3gpp:seal' });
    expect(payload.val_service_ids).toEqual(['mcptt-1', 'rail-3']);
    expect(second.claims()!.val_service_ids).toEqual(['mcptt-1', 'rail-3']);
    await cliOk(server.env, ['service', 'revoke', 'rail-3', 'bob']);
  });

  test('replaying a used refresh token revokes the whole grant', async () => {
    const first = await loginAndRedeem('alice', 'alice-password-1');
    const second = await oidc.refreshTokenGrant(ue, first.refresh_token!);
    await expect(oidc.refreshTokenGrant(ue, first.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // The grant is gone: the newest refresh token no longer works either.
    await expect(oidc.refreshTokenGrant(ue, second.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('a user removed from every VAL service gets access_denied on refresh', async () => {
    await cliOk(server.env, ['user', 'add', 'dave', '--password', 'dave-password-1']);
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'dave']);
    const tokens = await loginAndRedeem('dave', 'dave-password-1');
    await cliOk(server.env, ['service', 'revoke', 'mcptt-1', 'dave']);
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'access_denied' });
  });

  test('a disabled user cannot refresh', async () => {
    await cliOk(server.env, ['user', 'add', 'erin', '--password', 'erin-password-1']);
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'erin']);
    const tokens = await loginAndRedeem('erin', 'erin-password-1');
    await cliOk(server.env, ['user', 'disable', 'erin']);
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('userinfo, introspection, revocation', () => {
  test('userinfo carries sub, val_user_id and val_service_ids (token obtained with scope=openid)', async () => {
    const tokens = await loginAndRedeem('alice', 'alice-password-1');
    const forUserinfo = await oidc.refreshTokenGrant(ue, tokens.refresh_token!, { scope: SCOPE });
    const info = await oidc.fetchUserInfo(ue, forUserinfo.access_token, 'alice');
    expect(info).toMatchObject({ sub: 'alice', val_user_id: 'alice', val_service_ids: ['mcptt-1', 'v2x-7'] });
  });

  test('a VAL server introspects a user access token (RFC 7662)', async () => {
    const tokens = await loginAndRedeem('alice', 'alice-password-1');
    const info = await oidc.tokenIntrospection(valServer, tokens.access_token);
    expect(info).toMatchObject({ active: true, sub: 'alice', client_id: 'val-ue', aud: 'urn:3gpp:seal', token_type: 'Bearer' });
  });

  test('revocation makes the refresh token inactive (RFC 7009)', async () => {
    const tokens = await loginAndRedeem('bob', 'bob-password-1');
    await oidc.tokenRevocation(ue, tokens.refresh_token!);
    const info = await oidc.tokenIntrospection(valServer, tokens.refresh_token!);
    expect(info.active).toBe(false);
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('a forged access token is inactive', async () => {
    const tokens = await loginAndRedeem('bob', 'bob-password-1');
    const [h, p] = tokens.access_token.split('.');
    const forged = `${h}.${p}.${Buffer.from('not-a-signature').toString('base64url')}`;
    expect((await oidc.tokenIntrospection(valServer, forged)).active).toBe(false);
    await expect(jwtVerify(forged, jwks())).rejects.toThrow();
  });
});

describe('client_credentials for VAL servers', () => {
  test('resource selects the SEAL server audience', async () => {
    const tokens = await oidc.clientCredentialsGrant(valServer, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' });
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks(), { audience: 'https://skms.example.org', typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ client_id: 'val-server-1', sub: 'val-server-1', scope: '3gpp:seal:val_service' });
    expect(payload.val_service_ids).toBeUndefined();
  });

  test('an unregistered resource is invalid_target; a wrong secret is invalid_client', async () => {
    await expect(oidc.clientCredentialsGrant(valServer, { resource: 'https://nowhere.example.org' })).rejects.toMatchObject({ error: 'invalid_target' });
    const wrong = await oidc.discovery(new URL(server.issuer), 'val-server-1', 'wrong-secret', undefined, { execute: [oidc.allowInsecureRequests] });
    await expect(oidc.clientCredentialsGrant(wrong)).rejects.toMatchObject({ error: 'invalid_client' });
  });
});

describe('signing key rotation', () => {
  test('keys rotate switches signing; tokens signed before still verify from the JWKS', async () => {
    const before = await oidc.clientCredentialsGrant(valServer, { resource: 'https://skms.example.org' });
    const oldKid = decodeProtectedHeader(before.access_token).kid;
    await cliOk(server.env, ['keys', 'rotate']);
    await server.idms.refreshKeys();
    const after = await oidc.clientCredentialsGrant(valServer, { resource: 'https://skms.example.org' });
    const newKid = decodeProtectedHeader(after.access_token).kid;
    expect(newKid).not.toBe(oldKid);
    const set = createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
    await expect(jwtVerify(before.access_token, set)).resolves.toBeDefined();
    await expect(jwtVerify(after.access_token, set)).resolves.toBeDefined();
    const exported = JSON.parse(await cliOk(server.env, ['keys', 'export'])) as { keys: { kid: string; d?: string }[] };
    expect(exported.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    expect(exported.keys.every((k) => k.d === undefined)).toBe(true);
    // Logins after the rotation still work and are signed with the new key.
    const tokens = await loginAndRedeem('alice', 'alice-password-1');
    expect(decodeProtectedHeader(tokens.access_token).kid).toBe(newKid);
  });
});
