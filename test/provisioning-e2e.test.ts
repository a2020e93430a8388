// End to end: a VAL server provisions through the API, a VAL user logs in with a real OIDC client (openid-client,
// code + PKCE), the tokens carry the services, the VAL server removes one and the next refresh shows it gone.
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { callDocumented, PROVISIONING_PATH, provisioningToken, valServerClient, type Problem } from './helpers/provisioning.ts';

const REDIRECT = 'http://127.0.0.1:8123/cb';
const SCOPE = 'openid offline_access 3gpp:seal:val_service';
const MCX = 'val-server-mcx.example.org';

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;
let token: string;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1,v2x-7']);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT, '--scope', `${SCOPE} 3gpp:seal:idm:provisioning`]);
  await cliOk(server.env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  token = await provisioningToken(await valServerClient(server, 'mcx', 'mcx-secret-0123456789'), server);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

async function login(user: string, password: string, params: { scope?: string; resource?: string } = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(ue, {
    redirect_uri: REDIRECT,
    scope: params.scope ?? SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    prompt: 'consent', // OIDC Core §11: offline_access needs prompt=consent
    ...(params.resource ? { resource: params.resource } : {}),
  });
  const callback = await new Browser().login(url, user, password, REDIRECT);
  return oidc.authorizationCodeGrant(ue, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

const services = async (accessToken: string) =>
  (await jwtVerify(accessToken, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { issuer: server.issuer, audience: 'urn:3gpp:seal', typ: 'at+jwt' }))
    .payload.val_service_ids;

test('VAL server provisions → login shows the services → VAL server removes one → refresh shows it gone', async () => {
  // bob has no credentials yet: a mapping may name a user who does not exist (DESIGN, data).
  const provided = await callDocumented(server, 'POST', '/configurations', '/configurations', {
    token,
    json: {
      requesterIdentity: MCX,
      valServiceInfos: [
        { valServiceId: 'mcptt-1', valUserIds: ['alice', 'bob'] },
        { valServiceId: 'v2x-7', valUserIds: ['alice'] },
      ],
    },
  });
  expect(provided.body).toEqual({ result: 'SUCCESS' });

  const tokens = await login('alice', 'alice-password-1');
  expect(tokens.claims()).toMatchObject({ sub: 'alice', val_user_id: 'alice', val_service_ids: ['mcptt-1', 'v2x-7'] });
  expect(await services(tokens.access_token)).toEqual(['mcptt-1', 'v2x-7']);

  const removed = await callDocumented(server, 'PATCH', '/configurations/{valServiceId}', '/configurations/v2x-7', { token, json: { remove: ['alice'] } });
  expect(removed.body).toEqual({ result: 'SUCCESS', added: 0, removed: 1 });
  const refreshed = await oidc.refreshTokenGrant(ue, tokens.refresh_token!);
  expect(refreshed.claims()!.val_service_ids).toEqual(['mcptt-1']);
  expect(await services(refreshed.access_token)).toEqual(['mcptt-1']);

  // Provide_Configuration without alice: she has no VAL service left, so the next refresh is refused.
  expect(
    (
      await callDocumented(server, 'POST', '/configurations', '/configurations', {
        token,
        json: { requesterIdentity: MCX, valServiceInfos: [{ valServiceId: 'mcptt-1', valUserIds: ['bob'] }] },
      })
    ).status,
  ).toBe(200);
  await expect(oidc.refreshTokenGrant(ue, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'access_denied' });

  // bob, provisioned before he had credentials, logs in with the service once the operator creates him.
  await cliOk(server.env, ['user', 'add', 'bob', '--password', 'bob-password-1']);
  expect((await login('bob', 'bob-password-1')).claims()!.val_service_ids).toEqual(['mcptt-1']);
});

describe("a VAL user's own token never opens the provisioning API", () => {
  const provisioning = () => `${server.config.issuer}${PROVISIONING_PATH}`;
  beforeAll(async () => {
    await cliOk(server.env, ['user', 'add', 'carol', '--password', 'carol-password-1']);
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'carol']);
  });

  test('with the provisioning scope: 403 (a user is not a VAL server)', async () => {
    const tokens = await login('carol', 'carol-password-1', { scope: 'openid 3gpp:seal:idm:provisioning', resource: provisioning() });
    const res = await callDocumented(server, 'GET', '/configurations/{valServiceId}', '/configurations/mcptt-1', { token: tokens.access_token });
    expect(res.status).toBe(403);
    expect((res.body as Problem).cause).toBe('NOT_A_VAL_SERVER');
  });

  test('for the API audience but without the scope: 403 insufficient_scope', async () => {
    const tokens = await login('carol', 'carol-password-1', { scope: 'openid', resource: provisioning() });
    const res = await callDocumented(server, 'GET', '/configurations/{valServiceId}', '/configurations/mcptt-1', { token: tokens.access_token });
    expect(res.status).toBe(403);
    expect((res.body as Problem).cause).toBe('INSUFFICIENT_SCOPE');
    expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });
});
