// What the S-IdMS refuses at login and at the token endpoint, with the exact answer a client or user sees.
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:8125/cb';
const SCOPE = 'openid offline_access 3gpp:seal:val_service';

let database: TestDatabase;
let server: TestServer;
let shortLived: TestServer;
let ue: oidc.Configuration;
let valServer: oidc.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database, { throttle: { windowSeconds: 60, userLimit: 3, addressLimit: 1000, lockSeconds: 30, maxLockSeconds: 60 } });
  // Same database, 3-second tokens: for expiry cases (long enough that the first use cannot race the expiry).
  shortLived = await startTestServer(database, { env: { IDMS_ACCESS_TOKEN_TTL: '3', IDMS_REFRESH_TOKEN_TTL: '3' } });
  const env = server.env;
  await cliOk(env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(env, ['user', 'add', 'mallory', '--password', 'mallory-password-1']);
  await cliOk(env, ['user', 'add', 'bob', '--password', 'bob-password-1']);
  await cliOk(env, ['user', 'disable', 'mallory']);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice', 'mallory', 'bob']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  await cliOk(env, ['client', 'add', 'val-server-1', '--secret', 'val-server-secret-1', '--grant', 'client_credentials']);
  const opts = { execute: [oidc.allowInsecureRequests] };
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), opts);
  valServer = await oidc.discovery(new URL(server.issuer), 'val-server-1', 'val-server-secret-1', undefined, opts);
});

afterAll(async () => {
  await shortLived?.close();
  await server?.close();
  await database?.drop();
});

async function authorizationUrl(config: oidc.Configuration, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope: SCOPE,
    prompt: 'consent',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  });
  return { url, verifier };
}

/** Opens the login page and submits one attempt; returns status and the page's error text. */
async function attempt(valUserId: string, password: string) {
  const browser = new Browser();
  const { url } = await authorizationUrl(ue);
  const page = await browser.openAuthorization(url, REDIRECT);
  if ('callback' in page) throw new Error('expected the login page');
  const res = await browser.submitLogin(page.loginUrl, page.html, valUserId, password, REDIRECT);
  const message = /role="alert"[^>]*>([^<]*)</.exec(res.html)?.[1];
  return { status: res.status, message, callback: res.callback };
}

describe('login form', () => {
  test('unknown user, wrong password and disabled user get the same generic answer', async () => {
    const wrong = await attempt('alice', 'not-the-password');
    const unknown = await attempt('nobody-here', 'not-the-password');
    const disabled = await attempt('mallory', 'mallory-password-1');
    expect(wrong).toEqual({ status: 400, message: 'The VAL user ID or password is incorrect.', callback: undefined });
    expect(unknown).toEqual(wrong);
    expect(disabled).toEqual(wrong);
  });

  test('repeated failures lock the VAL user ID with 429, for unknown IDs exactly as for known ones', async () => {
    for (const id of ['bob', 'ghost']) {
      for (let i = 0; i < 3; i++) expect((await attempt(id, 'bad-password')).status).toBe(400);
      // Locked even with the right password: the lock does not tell whether the ID exists.
      const locked = await attempt(id, id === 'bob' ? 'bob-password-1' : 'bad-password');
      expect(locked.status).toBe(429);
      expect(locked.message).toMatch(/^Too many failed sign-in attempts\. Try again in \d+ seconds\.$/);
    }
    await database.db('login_attempts').delete();
    expect((await attempt('bob', 'bob-password-1')).callback).toContain('code=');
  });

  test('a form without the CSRF token of its interaction is refused', async () => {
    const browser = new Browser();
    const { url } = await authorizationUrl(ue);
    const page = await browser.openAuthorization(url, REDIRECT);
    if ('callback' in page) throw new Error('expected the login page');
    const forged = page.html.replace(/name="csrf" value="[^"]*"/, 'name="csrf" value="forged"');
    const res = await browser.submitLogin(page.loginUrl, forged, 'alice', 'alice-password-1', REDIRECT);
    expect(res.status).toBe(403);
    expect(res.callback).toBeUndefined();
  });

  test('the login page cannot be completed without the interaction cookie (other browser)', async () => {
    const { url } = await authorizationUrl(ue);
    const first = new Browser();
    const page = await first.openAuthorization(url, REDIRECT);
    if ('callback' in page) throw new Error('expected the login page');
    const res = await new Browser().submitLogin(page.loginUrl, page.html, 'alice', 'alice-password-1', REDIRECT);
    expect(res.status).toBe(400);
    expect(res.html).toContain('expired or was opened in another browser');
  });
});

describe('authorization request', () => {
  test('a public client without PKCE is refused (invalid_request)', async () => {
    const url = oidc.buildAuthorizationUrl(ue, { redirect_uri: REDIRECT, scope: SCOPE });
    const res = await fetch(url, { redirect: 'manual' });
    const location = new URL(res.headers.get('location')!);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  test('PKCE method plain is refused', async () => {
    const url = oidc.buildAuthorizationUrl(ue, { redirect_uri: REDIRECT, scope: SCOPE, code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' });
    const res = await fetch(url, { redirect: 'manual' });
    expect(new URL(res.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
  });

  test('an unregistered redirect URI gets an error page, never a redirect', async () => {
    for (const redirect of ['http://127.0.0.1:8125/cb/extra', 'http://127.0.0.1:8125/c', 'https://evil.example.org/cb']) {
      const { url } = await authorizationUrl(ue, { redirect_uri: redirect });
      const res = await fetch(url, { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.text()).toContain('redirect_uri did not match any of the client');
    }
  });
});

describe('token endpoint', () => {
  async function code(config: oidc.Configuration) {
    const { url, verifier } = await authorizationUrl(config);
    const callback = await new Browser().login(url, 'alice', 'alice-password-1', REDIRECT);
    return { callback: new URL(callback), verifier };
  }

  test('a code is single use; its reuse revokes the tokens issued from it', async () => {
    const { callback, verifier } = await code(ue);
    const tokens = await oidc.authorizationCodeGrant(ue, callback, { pkceCodeVerifier: verifier });
    await expect(oidc.authorizationCodeGrant(ue, callback, { pkceCodeVerifier: verifier })).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('a wrong PKCE verifier is invalid_grant', async () => {
    const { callback } = await code(ue);
    await expect(oidc.authorizationCodeGrant(ue, callback, { pkceCodeVerifier: oidc.randomPKCECodeVerifier() })).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  test('expired access and refresh tokens are refused', async () => {
    const short = await oidc.discovery(new URL(shortLived.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const shortServer = await oidc.discovery(new URL(shortLived.issuer), 'val-server-1', 'val-server-secret-1', undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    const { callback, verifier } = await code(short);
    const tokens = await oidc.authorizationCodeGrant(short, callback, { pkceCodeVerifier: verifier });
    expect(tokens.expires_in).toBe(3);
    expect((await oidc.tokenIntrospection(shortServer, tokens.access_token)).active).toBe(true);
    await new Promise((r) => setTimeout(r, 4100));
    expect((await oidc.tokenIntrospection(shortServer, tokens.access_token)).active).toBe(false);
    await expect(oidc.refreshTokenGrant(short, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test("a public client cannot introspect another client's token; a VAL server cannot revoke it", async () => {
    const cc = await oidc.clientCredentialsGrant(valServer);
    expect((await oidc.tokenIntrospection(ue, cc.access_token)).active).toBe(false);
    const { callback, verifier } = await code(ue);
    const tokens = await oidc.authorizationCodeGrant(ue, callback, { pkceCodeVerifier: verifier });
    await expect(oidc.tokenRevocation(valServer, tokens.access_token)).rejects.toMatchObject({ error: 'invalid_request' });
    expect((await oidc.tokenIntrospection(valServer, tokens.access_token)).active).toBe(true);
  });

  test('one eligibility rule: a user removed from every VAL service is inactive at introspection and access_denied on refresh', async () => {
    await cliOk(server.env, ['user', 'add', 'frank', '--password', 'frank-password-1']);
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'frank']);
    const { url, verifier } = await authorizationUrl(ue);
    const callback = new URL(await new Browser().login(url, 'frank', 'frank-password-1', REDIRECT));
    const tokens = await oidc.authorizationCodeGrant(ue, callback, { pkceCodeVerifier: verifier });
    expect(await oidc.tokenIntrospection(valServer, tokens.access_token)).toMatchObject({ active: true, sub: 'frank' });
    await cliOk(server.env, ['service', 'revoke', 'mcptt-1', 'frank']);
    // The same answer (no_service) as login and refresh give: DESIGN, a user with no provisioned service gets no tokens.
    expect(await oidc.tokenIntrospection(valServer, tokens.access_token)).toEqual({ active: false });
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'access_denied' });
    // Provisioned again: the same token is active again (nothing was revoked, the rule is read at each request).
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'frank']);
    expect(await oidc.tokenIntrospection(valServer, tokens.access_token)).toMatchObject({ active: true, sub: 'frank' });
  });

  test('a revoked JWT access token introspects as inactive', async () => {
    const cc = await oidc.clientCredentialsGrant(valServer);
    await oidc.tokenRevocation(valServer, cc.access_token);
    expect((await oidc.tokenIntrospection(valServer, cc.access_token)).active).toBe(false);
  });
});

describe('values PostgreSQL cannot store', () => {
  test('a NUL byte in a presented token or VAL user ID is an ordinary refusal, not a 500 (found by the fuzzer)', async () => {
    // A token is VSCHAR (RFC 6749 appendix A.17): one with NUL is a malformed request, refused at the edge (issue 10 item 4).
    await expect(oidc.tokenIntrospection(valServer, 'abc\u0000def')).rejects.toMatchObject({ status: 400, error: 'invalid_request' });
    await expect(oidc.refreshTokenGrant(ue, 'abc\u0000def')).rejects.toMatchObject({ status: 400, error: 'invalid_request' });
    const nul = await attempt('alice\u0000', 'alice-password-1');
    expect(nul).toEqual({ status: 400, message: 'The VAL user ID or password is incorrect.', callback: undefined });
  });
});
