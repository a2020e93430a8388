// The OAuth 2.0 Security BCP (RFC 9700) and OIDC Core checks on the authorization code flow, one named test per item.
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { cliOk } from '../helpers/cli.ts';
import { Browser } from '../helpers/browser.ts';
import { authRequest, insecure, introspect, login, loginAndRedeem, PASSWORDS, provision, REDIRECT, type Deployment } from './support.ts';

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

/** Why a client-side check failed: openid-client puts the detail in the error's cause. */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const e = err as Error & { cause?: Error };
    return `${e.message}: ${e.cause?.message ?? ''}`;
  }
  return 'no error';
}

/** The authorization endpoint's answer: where it redirects (if anywhere) and its error parameters. */
async function authorize(url: URL): Promise<{ status: number; location?: URL; body: string }> {
  const res = await fetch(url, { redirect: 'manual' });
  const location = res.headers.get('location');
  return { status: res.status, location: location ? new URL(location, url) : undefined, body: await res.text() };
}

describe('PKCE (RFC 9700 §2.1.1, RFC 7636)', () => {
  test('an authorization request without code_challenge is refused for a public client', async () => {
    const { url } = await authRequest(d.ue);
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
    const res = await authorize(url);
    expect(res.location?.searchParams.get('error')).toBe('invalid_request');
    expect(res.location?.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  test('an authorization request without code_challenge is refused for a confidential client too', async () => {
    const { url } = await authRequest(d.web);
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
    const res = await authorize(url);
    expect(res.location?.searchParams.get('error')).toBe('invalid_request');
  });

  test('code_challenge_method=plain is refused', async () => {
    const { url, verifier } = await authRequest(d.ue);
    url.searchParams.set('code_challenge', verifier);
    url.searchParams.set('code_challenge_method', 'plain');
    const res = await authorize(url);
    expect(res.location?.searchParams.get('error')).toBe('invalid_request');
    expect(d.ue.serverMetadata().code_challenge_methods_supported).toEqual(['S256']);
  });

  test('PKCE downgrade: a code issued for a challenge cannot be redeemed without code_verifier', async () => {
    const { callback, state } = await login(d.ue, 'alice');
    await expect(oidc.authorizationCodeGrant(d.ue, callback, { expectedState: state })).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('a code cannot be redeemed with another code_verifier', async () => {
    const { callback, state } = await login(d.ue, 'alice');
    await expect(oidc.authorizationCodeGrant(d.ue, callback, { expectedState: state, pkceCodeVerifier: oidc.randomPKCECodeVerifier() })).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});

describe('authorization code (RFC 9700 §4.5, RFC 6749 §4.1.2)', () => {
  test('a code is single use, and its reuse revokes the tokens issued from it', async () => {
    const { callback, verifier, state, nonce } = await login(d.ue, 'alice');
    const tokens = await oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    expect((await introspect(d, tokens.access_token)).body.active).toBe(true);

    await expect(oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce })).rejects.toMatchObject(
      { error: 'invalid_grant' },
    );
    // RFC 6749 §4.1.2: "SHOULD revoke (when possible) all tokens previously issued based on that authorization code".
    await expect(oidc.refreshTokenGrant(d.ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await introspect(d, tokens.access_token)).body.active).toBe(false);
    expect((await introspect(d, tokens.refresh_token!)).body.active).toBe(false);
  });

  test('a code is bound to the client it was issued to', async () => {
    const { callback, verifier } = await login(d.ue, 'alice');
    const res = await fetch(`${d.server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('val-web:val-web-secret-1').toString('base64')}` },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: callback.searchParams.get('code')!,
        code_verifier: verifier,
        redirect_uri: REDIRECT,
      }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_grant' });
  });

  test('a code is bound to the redirect_uri of its authorization request', async () => {
    const { callback, verifier } = await login(d.ue, 'alice');
    const res = await fetch(`${d.server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: 'val-ue',
        code: callback.searchParams.get('code')!,
        code_verifier: verifier,
        redirect_uri: `${REDIRECT}/other`,
      }),
    });
    expect(await res.json()).toMatchObject({ error: 'invalid_grant' });
  });
});

describe('redirect URI exact matching (RFC 9700 §2.1, §4.1.3)', () => {
  const variants = [
    ['a longer path (prefix match)', `${REDIRECT}/evil`],
    ['an added query', `${REDIRECT}?next=https://evil.example`],
    ['another port on loopback', 'http://127.0.0.1:8999/cb'],
    ['a different case in the path', 'http://127.0.0.1:8123/CB'],
    ['a trailing slash', `${REDIRECT}/`],
    ['localhost for 127.0.0.1', 'http://localhost:8123/cb'],
    ['an attacker host', 'https://evil.example/cb'],
    ['userinfo in the authority', 'http://127.0.0.1:8123@evil.example/cb'],
    ['an encoded path', 'http://127.0.0.1:8123/c%62'],
  ] as const;

  test.each(variants)('a redirect_uri with %s is refused without redirecting', async (_name, uri) => {
    const { url } = await authRequest(d.ue, { redirect_uri: uri });
    const res = await authorize(url);
    expect(res.status).toBe(400);
    expect(res.location).toBeUndefined();
    expect(res.body).toContain('redirect_uri');
  });

  test('no open redirect through error responses: an unregistered redirect_uri never receives the error', async () => {
    // Each request also carries a second error that would normally be sent to the redirect_uri.
    const cases: Record<string, string>[] = [
      { redirect_uri: 'https://evil.example/cb', scope: 'openid not-a-scope' },
      { redirect_uri: 'https://evil.example/cb', code_challenge_method: 'plain' },
      { redirect_uri: 'https://evil.example/cb', response_type: 'token' },
      { redirect_uri: 'https://evil.example/cb', client_id: 'no-such-client' },
      { redirect_uri: 'https://evil.example/cb', prompt: 'none' },
    ];
    for (const extra of cases) {
      const { url } = await authRequest(d.ue, extra);
      const res = await authorize(url);
      expect({ extra, status: res.status, location: res.location?.href }).toEqual({ extra, status: 400, location: undefined });
    }
  });

  test('the registered redirect_uri still receives errors (with state and iss)', async () => {
    const { url, state } = await authRequest(d.ue, { scope: 'openid not-a-scope', prompt: 'none' });
    const res = await authorize(url);
    expect(res.location?.href.startsWith(`${REDIRECT}?`)).toBe(true);
    expect(res.location?.searchParams.get('error')).toEqual(expect.any(String));
    expect(res.location?.searchParams.get('state')).toBe(state);
    expect(res.location?.searchParams.get('iss')).toBe(d.server.issuer);
  });
});

describe('state and nonce (RFC 6749 §10.12, OIDC Core §3.1.2.1)', () => {
  test('state comes back unchanged, byte for byte', async () => {
    const state = 'a b+c/d=e&f?g#h%25 ünïcødé';
    const { callback } = await login(d.ue, 'bob', { state });
    expect(callback.searchParams.get('state')).toBe(state);
  });

  test('the nonce of the request is in the ID token', async () => {
    const { callback, verifier, state, nonce } = await login(d.ue, 'bob');
    const tokens = await oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    expect(tokens.claims()!.nonce).toBe(nonce);
  });

  test('the client detects a callback whose state is not the one it sent', async () => {
    const { callback, verifier } = await login(d.ue, 'bob');
    expect(await failure(oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: 'another-state' }))).toMatch(/"state"/);
  });
});

describe('issuer identification and mix-up (RFC 9207, RFC 9700 §4.4)', () => {
  test('discovery declares iss in authorization responses', () => {
    expect(d.ue.serverMetadata().authorization_response_iss_parameter_supported).toBe(true);
  });

  test('a successful authorization response carries iss', async () => {
    const { callback } = await login(d.ue, 'bob');
    expect(callback.searchParams.get('iss')).toBe(d.server.issuer);
  });

  test('an error authorization response carries iss', async () => {
    const { url } = await authRequest(d.ue, { prompt: 'none' });
    const res = await authorize(url);
    expect(res.location?.searchParams.get('error')).toBe('login_required');
    expect(res.location?.searchParams.get('iss')).toBe(d.server.issuer);
  });

  test('mix-up: a response naming another issuer, or none, is rejected by the client before the code is used', async () => {
    const { callback, verifier, state, nonce } = await login(d.ue, 'bob');
    const forged = new URL(callback);
    forged.searchParams.set('iss', 'https://attacker.example');
    expect(await failure(oidc.authorizationCodeGrant(d.ue, forged, { pkceCodeVerifier: verifier, expectedState: state }))).toMatch(/"iss"/);
    const stripped = new URL(callback);
    stripped.searchParams.delete('iss');
    expect(await failure(oidc.authorizationCodeGrant(d.ue, stripped, { pkceCodeVerifier: verifier, expectedState: state }))).toMatch(/"iss"/);
    // The untouched response still works: the code was not spent by the rejected attempts.
    await expect(
      oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }),
    ).resolves.toBeDefined();
  });
});

describe('refresh tokens (RFC 9700 §4.14)', () => {
  test('a refresh token rotates on use', async () => {
    const first = await loginAndRedeem(d.ue, 'alice');
    const second = await oidc.refreshTokenGrant(d.ue, first.refresh_token!);
    expect(second.refresh_token).toEqual(expect.any(String));
    expect(second.refresh_token).not.toBe(first.refresh_token);
  });

  test('reuse of a rotated refresh token revokes the grant: refresh and access tokens from it stop working', async () => {
    const first = await loginAndRedeem(d.ue, 'alice');
    const second = await oidc.refreshTokenGrant(d.ue, first.refresh_token!);
    await expect(oidc.refreshTokenGrant(d.ue, first.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(oidc.refreshTokenGrant(d.ue, second.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await introspect(d, second.access_token)).body.active).toBe(false);
    expect((await introspect(d, first.access_token)).body.active).toBe(false);
  });

  test('a refresh token is bound to the client it was issued to', async () => {
    const tokens = await loginAndRedeem(d.ue, 'alice');
    await expect(oidc.refreshTokenGrant(d.web, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test("offline_access without prompt=consent is not granted (OIDC Core §11); the refresh token is the VAL profile's, bound to the login", async () => {
    // Issue 13 (TS 33.434 A.4.2.5): a client registered for refresh_token gets one without offline_access; OIDC Core
    // §11 still decides offline_access: without prompt=consent it is not granted.
    const { callback, verifier, state, nonce } = await login(d.ue, 'alice', { prompt: 'login' });
    const tokens = await oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    expect(tokens.scope?.split(' ')).not.toContain('offline_access');
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  test('a client not registered for refresh_token gets no refresh token, even with offline_access and prompt=consent', async () => {
    await cliOk(d.server.env, [
      'client',
      'add',
      'code-only',
      '--public',
      '--redirect-uri',
      REDIRECT,
      '--grant',
      'authorization_code',
      '--scope',
      'openid offline_access 3gpp:seal:val_service',
    ]);
    const codeOnly = await oidc.discovery(new URL(d.server.issuer), 'code-only', undefined, oidc.None(), insecure);
    const { callback, verifier, state, nonce } = await login(codeOnly, 'alice', { prompt: 'consent' });
    const tokens = await oidc.authorizationCodeGrant(codeOnly, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    expect(tokens.refresh_token).toBeUndefined();
  });
});

describe('access tokens: audience-restricted and short-lived (RFC 9700 §2.3, RFC 8707, RFC 9068)', () => {
  const jwks = () => createRemoteJWKSet(new URL(`${d.server.issuer}/jwks`));

  test('a user access token is for exactly the requested resource and lives IDMS_ACCESS_TOKEN_TTL seconds', async () => {
    const tokens = await loginAndRedeem(d.ue, 'alice', { resource: 'https://skms.example.org' });
    const { payload } = await jwtVerify(tokens.access_token, jwks(), { issuer: d.server.issuer, audience: 'https://skms.example.org', typ: 'at+jwt' });
    expect(payload.aud).toBe('https://skms.example.org');
    expect(payload.exp! - payload.iat!).toBe(d.server.config.ttl.accessToken);
    expect(d.server.config.ttl.accessToken).toBeLessThanOrEqual(300);
    await expect(jwtVerify(tokens.access_token, jwks(), { audience: 'urn:3gpp:seal' })).rejects.toThrow(/aud/);
  });

  test('without resource, the access token is for the default resource only', async () => {
    const tokens = await loginAndRedeem(d.ue, 'alice');
    expect(decodeJwt(tokens.access_token).aud).toBe(d.server.config.defaultResource);
  });

  test('a client_credentials token is for the requested resource and lives IDMS_ACCESS_TOKEN_TTL seconds', async () => {
    const tokens = await oidc.clientCredentialsGrant(d.valServer, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' });
    const claims = decodeJwt(tokens.access_token);
    expect(claims.aud).toBe('https://skms.example.org');
    expect(claims.exp! - claims.iat!).toBe(d.server.config.ttl.accessToken);
  });

  test('a refresh cannot widen the audience to a resource not granted', async () => {
    const tokens = await loginAndRedeem(d.ue, 'alice', { resource: 'https://skms.example.org' });
    await expect(oidc.refreshTokenGrant(d.ue, tokens.refresh_token!, { resource: 'urn:3gpp:seal' })).rejects.toMatchObject({ error: 'invalid_target' });
  });

  test("the userinfo endpoint refuses an access token for a resource server that was not granted openid, and a client's own token", async () => {
    // Issue 13 (OIDC Core §5.3): the login's access token (granted openid) works at userinfo whatever its audience;
    // one that was not granted openid does not, nor does a client_credentials token.
    const me = (token: string) => fetch(`${d.server.issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
    // A plain OAuth 2.0 request (no openid, so no nonce either).
    const req = await authRequest(d.ue, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' });
    req.url.searchParams.delete('nonce');
    const callback = new URL(await new Browser().login(req.url, 'alice', PASSWORDS.alice, req.redirectUri));
    const tokens = await oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: req.verifier, expectedState: req.state });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: 'https://skms.example.org', scope: '3gpp:seal:val_service' });
    const res = await me(tokens.access_token);
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toMatch(/insufficient_scope/);
    const clientToken = await oidc.clientCredentialsGrant(d.valServer, { resource: 'https://skms.example.org' });
    const refused = await me(clientToken.access_token);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/invalid_token/);
    expect((await me((await loginAndRedeem(d.ue, 'alice')).access_token)).status).toBe(200);
  });
});

test('discovery offers only the code flow and no implicit or hybrid response types', async () => {
  const meta = (await (await fetch(`${d.server.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  expect(meta.response_types_supported).toEqual(['code']);
  expect(meta.grant_types_supported).not.toContain('implicit');
  const { url } = await authRequest(d.ue, { response_type: 'code id_token' });
  const res = await authorize(url);
  // Refused in the fragment (the hybrid flow's response mode): no code and no token is issued.
  const fragment = new URLSearchParams(res.location?.hash.slice(1));
  expect(fragment.get('error')).toBe('unsupported_response_type');
  expect(fragment.has('code') || fragment.has('id_token') || fragment.has('access_token')).toBe(false);
});
