// Structured logs: one JSON line per request with a propagated X-Request-Id, and no credential ever written.
import { PassThrough } from 'node:stream';
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { createLogger } from '../src/observability/logger.ts';
import { acceptRequestId } from '../src/observability/request-log.ts';

const REDIRECT = 'http://127.0.0.1:8125/cb';
const SCOPE = 'openid offline_access 3gpp:seal:val_service';
const PASSWORD = 'Dana-Secret-Passw0rd';
const WRONG_PASSWORD = 'Wrong-Guess-Passw0rd';
const CLIENT_SECRET = 'val-server-secret-for-logging';

let database: TestDatabase;
let server: TestServer;
let captured = '';
/** Every credential value the flows below put on the wire; none may appear in the logs. */
const secrets = new Set<string>();

type LogLine = Record<string, unknown> & { level: string; msg: string };
const lines = (): LogLine[] =>
  captured
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);

beforeAll(async () => {
  database = await createTestDatabase();
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => (captured += c.toString('utf8')));
  // trace: the most verbose level must be as clean as the default one.
  server = await startTestServer(database, { logger: createLogger({ level: 'trace', destination: sink }) });
  await cliOk(server.env, ['user', 'add', 'dana', '--password', PASSWORD]);
  await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'dana']);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  await cliOk(server.env, ['client', 'add', 'val-server-1', '--secret', CLIENT_SECRET, '--grant', 'client_credentials']);
  secrets.add(PASSWORD).add(WRONG_PASSWORD).add(CLIENT_SECRET);
  secrets.add(Buffer.from(`val-server-1:${CLIENT_SECRET}`).toString('base64')); // the Basic Authorization header
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe('no credential in the logs', () => {
  test('login (with a wrong password first), code redemption, refresh, reuse, introspection and client_credentials', async () => {
    const opts = { execute: [oidc.allowInsecureRequests] };
    const ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), opts);
    const valServer = await oidc.discovery(new URL(server.issuer), 'val-server-1', CLIENT_SECRET, undefined, opts);

    const browser = new Browser();
    const store = browser.jar.store.bind(browser.jar);
    const cookies: [string, string][] = [];
    browser.jar.store = (res: Response) => {
      for (const line of res.headers.getSetCookie()) {
        const [name, ...rest] = line.split(';')[0]!.split('=');
        if (rest.join('=').length >= 8) cookies.push([name!.trim(), rest.join('=')]);
      }
      store(res);
    };

    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    secrets.add(verifier).add(state).add(nonce);
    const url = oidc.buildAuthorizationUrl(ue, {
      redirect_uri: REDIRECT,
      scope: SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      prompt: 'consent',
    });
    const page = await browser.openAuthorization(url, REDIRECT);
    if ('callback' in page) throw new Error('expected the login page');
    const failed = await browser.submitLogin(page.loginUrl, page.html, 'dana', WRONG_PASSWORD, REDIRECT);
    expect(failed.status).toBe(400);
    const result = await browser.submitLogin(page.loginUrl, failed.html, 'dana', PASSWORD, REDIRECT);
    const callback = new URL(result.callback!);
    // oidc-provider's interaction cookies hold the interaction uid, which is also the login page's path
    // (/interaction/:uid) and useless without its signature cookie; every other cookie value is a credential.
    const uid = new URL(page.loginUrl).pathname.split('/')[2];
    for (const [name, value] of cookies) if (!(/^_interaction(_resume)?$/.test(name) && value === uid)) secrets.add(value);
    expect(cookies.map(([name]) => name)).toEqual(expect.arrayContaining(['_session', '_session.sig', '_interaction.sig']));
    secrets.add(callback.searchParams.get('code')!);

    const tokens = await oidc.authorizationCodeGrant(ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    secrets.add(tokens.access_token).add(tokens.refresh_token!).add(tokens.id_token!);
    const refreshed = await oidc.refreshTokenGrant(ue, tokens.refresh_token!);
    secrets.add(refreshed.access_token).add(refreshed.refresh_token!);
    const info = await oidc.tokenIntrospection(valServer, refreshed.access_token);
    expect(info.active).toBe(true);
    // A replayed refresh token is refused (and logged at debug as a refused token request).
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const cc = await oidc.clientCredentialsGrant(valServer);
    secrets.add(cc.access_token);

    await new Promise((r) => setTimeout(r, 50)); // response 'finish' handlers run after the client has the body
    const all = lines();
    // The capture works: the flow's requests are all there, at the levels expected.
    const requests = all.filter((l) => l.msg === 'request');
    const paths = requests.map((l) => `${String(l.method)} ${String(l.path)} ${String(l.status)}`);
    expect(paths).toEqual(expect.arrayContaining(['GET /auth 303', 'POST /token 200', 'POST /token 400', 'POST /token/introspection 200']));
    expect(paths.some((p) => /^POST \/interaction\/[^ ]+\/login 400$/.test(p))).toBe(true);
    expect(all.some((l) => l.level === 'debug' && l.msg === 'token request refused' && l.error === 'invalid_grant')).toBe(true);

    expect(secrets.size).toBeGreaterThanOrEqual(16);
    for (const secret of secrets) {
      if (captured.includes(secret))
        throw new Error(`a credential appears in the logs: ${secret.slice(0, 12)}… in ${captured.split('\n').find((l) => l.includes(secret))}`);
    }
    // Paths are logged without their query string: codes and state travel there.
    expect(requests.every((l) => !String(l.path).includes('?'))).toBe(true);
    expect(captured).not.toMatch(/code=|state=|code_challenge=/);
  });

  test('secret-named fields of logged objects are redacted, however deep', () => {
    let out = '';
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const logger = createLogger({ destination: sink });
    logger.info(
      {
        req: { headers: { authorization: 'Bearer eyJ-token', cookie: '_session=abc', 'set-cookie': '_session=def' } },
        params: { client_secret: 's3cret-1', code: 'c0de-1', refresh_token: 'rt-1', assertion: 'as-1', subject_token: 'st-1', code_verifier: 'cv-1' },
        password: 'pw-1',
        user: { password: 'pw-2' },
      },
      'object with secrets',
    );
    const line = JSON.parse(out) as { req: { headers: Record<string, string> }; params: Record<string, string>; password: string; user: { password: string } };
    expect(Object.values(line.req.headers)).toEqual(['[redacted]', '[redacted]', '[redacted]']);
    expect(new Set(Object.values(line.params))).toEqual(new Set(['[redacted]']));
    expect([line.password, line.user.password]).toEqual(['[redacted]', '[redacted]']);
    expect(out).not.toMatch(/eyJ-token|abc|def|s3cret-1|c0de-1|rt-1|as-1|st-1|cv-1|pw-1|pw-2/);
  });
});

test('the pretty format (a terminal) is one short text line per entry, redacted the same way', async () => {
  let out = '';
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const logger = createLogger({ destination: sink, format: 'pretty' });
  logger.info({ method: 'POST', path: '/token', status: 200, params: { client_secret: 'pretty-s3cret' } }, 'request');
  await new Promise((r) => setImmediate(r));
  expect(out).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO  request method=POST path=\/token status=200 params=\{"client_secret":"\[redacted\]"\}\n$/);
});

describe('X-Request-Id', () => {
  test('a well-formed request id is echoed and logged', async () => {
    const res = await fetch(`${server.issuer}/healthz`, { headers: { 'X-Request-Id': 'lb-7f3a:42' } });
    expect(res.headers.get('x-request-id')).toBe('lb-7f3a:42');
    await new Promise((r) => setTimeout(r, 20));
    expect(lines()).toContainEqual(expect.objectContaining({ msg: 'request', requestId: 'lb-7f3a:42', path: '/healthz', route: '/healthz', status: 200 }));
  });

  test("the provider's own endpoints carry it too", async () => {
    const res = await fetch(`${server.issuer}/.well-known/openid-configuration`, { headers: { 'X-Request-Id': 'disco-1' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('disco-1');
    await new Promise((r) => setTimeout(r, 20));
    expect(lines()).toContainEqual(expect.objectContaining({ requestId: 'disco-1', route: 'discovery', status: 200 }));
  });

  test('a missing, overlong or unsafe request id is replaced by a fresh UUID', async () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const sent of [undefined, 'x'.repeat(129), 'bad id with spaces', 'a"},"level":"fatal']) {
      const res = await fetch(`${server.issuer}/healthz`, { headers: sent === undefined ? {} : { 'X-Request-Id': sent } });
      expect(res.headers.get('x-request-id')).toMatch(uuid);
    }
    expect(acceptRequestId('x'.repeat(128))).toBe('x'.repeat(128));
    expect(acceptRequestId('')).toMatch(uuid);
  });
});
