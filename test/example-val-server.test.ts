// examples/val-server run as its own process against a running S-IdMS: VAL user login, registration with the access token, IMPU binding.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { pkceAuthorizationRequest } from './helpers/authorize.ts';

const REDIRECT = 'http://127.0.0.1:8125/cb';
const VAL = 'https://mcptt.val.example.org';
const SERVICE = 'mcptt-1';

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;
let valProcess: ChildProcess;
let valUrl: string;
let valStderr = '';

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  const env = server.env;
  await cliOk(env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(env, ['user', 'add', 'bob', '--password', 'bob-password-1']);
  await cliOk(env, ['user', 'add', 'carol', '--password', 'carol-password-1']);
  await cliOk(env, ['service', 'grant', SERVICE, 'alice', 'carol']);
  await cliOk(env, ['service', 'grant', 'v2x-7', 'bob']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT, '--name', 'MCPTT client']);
  await cliOk(env, ['resource', 'add', VAL]);
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });

  // The example exactly as its README runs it: a separate Node process configured by environment, with
  // @seal-idms/verify resolved to the kit's source in this repository (the condition in packages/verify/package.json).
  valProcess = spawn(process.execPath, ['--conditions=@seal-idms/source', 'examples/val-server/server.ts'], {
    env: { PATH: process.env.PATH, IDMS_ISSUER: server.issuer, VAL_AUDIENCE: VAL, VAL_SERVICE_ID: SERVICE, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  valProcess.stderr!.on('data', (c: Buffer) => (valStderr += c.toString()));
  let out = '';
  for await (const chunk of valProcess.stdout!) {
    out += String(chunk);
    const match = /listening on (http:\/\/\S+)/.exec(out);
    if (match) {
      valUrl = match[1]!;
      break;
    }
  }
  if (!valUrl) throw new Error(`the example VAL server did not start: ${valStderr}`);
});

afterAll(async () => {
  if (valProcess && valProcess.exitCode === null) {
    valProcess.kill('SIGTERM');
    await once(valProcess, 'exit');
  }
  await server?.close();
  await database?.drop();
});

async function accessTokenOf(user: string, password: string, resource = VAL): Promise<string> {
  const { url, verifier, state, nonce } = await pkceAuthorizationRequest(ue, REDIRECT, { scope: 'openid 3gpp:seal:val_service', resource });
  const callback = await new Browser().login(url, user, password, REDIRECT);
  const tokens = await oidc.authorizationCodeGrant(ue, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  return tokens.access_token;
}

function register(token: string | undefined, impu: string) {
  return fetch(`${valUrl}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ impu }),
  });
}

test('a VAL user registers with the access token and the IMPU is bound to that user and VAL service', async () => {
  const token = await accessTokenOf('alice', 'alice-password-1');
  const res = await register(token, 'sip:alice@example.org');
  expect(res.status).toBe(201);
  expect(await res.json()).toMatchObject({ impu: 'sip:alice@example.org', valUserId: 'alice', valServiceId: SERVICE, clientId: 'val-ue' });

  // Registering again refreshes the binding; the user sees it.
  expect((await register(token, 'sip:alice@example.org')).status).toBe(200);
  const list = await fetch(`${valUrl}/register`, { headers: { authorization: `Bearer ${token}` } });
  expect(await list.json()).toEqual({ bindings: [expect.objectContaining({ impu: 'sip:alice@example.org', valUserId: 'alice' })] });
});

test('a user not provisioned for the VAL service is refused with 403 and WWW-Authenticate', async () => {
  const token = await accessTokenOf('bob', 'bob-password-1');
  const res = await register(token, 'sip:bob@example.org');
  expect(res.status).toBe(403);
  expect(res.headers.get('www-authenticate')).toBe(
    `Bearer realm="val-server", error="insufficient_scope", error_description="the VAL user is not authorized for the VAL service ${SERVICE}"`,
  );
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
});

test('no token, a token for another audience and a tampered token are refused with 401', async () => {
  const none = await register(undefined, 'sip:alice@example.org');
  expect(none.status).toBe(401);
  expect(none.headers.get('www-authenticate')).toBe('Bearer realm="val-server"');

  const otherAudience = await register(await accessTokenOf('alice', 'alice-password-1', 'urn:3gpp:seal'), 'sip:alice@example.org');
  expect(otherAudience.status).toBe(401);
  expect(otherAudience.headers.get('www-authenticate')).toContain('error="invalid_token"');

  const token = await accessTokenOf('alice', 'alice-password-1');
  const [h, p] = token.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'carol' })).toString('base64url')}.${token.split('.')[2]}`;
  const res = await register(tampered, 'sip:carol@example.org');
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
});

test('an IMPU bound to one VAL user cannot be taken by another; a malformed IMPU is a 400', async () => {
  const carol = await accessTokenOf('carol', 'carol-password-1');
  const taken = await register(carol, 'sip:alice@example.org');
  expect(taken.status).toBe(409);
  expect((await register(carol, 'not an impu')).status).toBe(400);
  expect((await register(carol, 'tel:+358401234567')).status).toBe(201);
});
