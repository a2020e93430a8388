// End to end as a VAL server built from TS 29.549 and a VAL UE would run it: a plain client_credentials token
// (openid-client), a configuration mixing valUserId and valUeId, users logging in (code + PKCE) and refreshing while
// the configuration is created, replaced, modified and deleted; two VAL servers sharing one VAL service.
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { pkceAuthorizationRequest } from './helpers/authorize.ts';
import { ssIpp, valServerClient, type ApiResponse } from './helpers/provisioning.ts';

const REDIRECT = 'http://127.0.0.1:8123/cb';
const MCX = 'val-server-mcx.example.org';
const B = 'val-server-b.example.org';
const C = '/configurations';
const I = '/configurations/{confId}';

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;
let mcx: string;
let b: string;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1,shared-9']);
  await cliOk(server.env, ['val-server', 'add', B, '--client-id', 'b', '--secret', 'b-secret-0123456789', '--services', 'shared-9']);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  await cliOk(server.env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  // bob is known by his UE: a service provisioned to ue-bob-1 reaches his tokens.
  await cliOk(server.env, ['user', 'add', 'bob', '--password', 'bob-password-1', '--ue-id', 'ue-bob-1']);
  await cliOk(server.env, ['user', 'add', 'carol', '--password', 'carol-password-1']);
  // Everyone keeps one operator grant, so losing the provisioned service shows in the claims rather than as access_denied.
  await cliOk(server.env, ['service', 'grant', 'base-0', 'alice', 'bob', 'carol']);
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  // The 3GPP client's way: client_credentials with neither scope nor resource.
  mcx = (await oidc.clientCredentialsGrant(await valServerClient(server, 'mcx', 'mcx-secret-0123456789'))).access_token;
  b = (await oidc.clientCredentialsGrant(await valServerClient(server, 'b', 'b-secret-0123456789'))).access_token;
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

async function login(user: string) {
  const { url, verifier, state, nonce } = await pkceAuthorizationRequest(ue, REDIRECT);
  const callback = await new Browser().login(url, user, `${user}-password-1`, REDIRECT);
  return oidc.authorizationCodeGrant(ue, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

/** The refresh chain of one VAL user: each call rotates the refresh token and answers the new ID token's services. */
function session(tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers) {
  let refresh = tokens.refresh_token!;
  return async () => {
    const next = await oidc.refreshTokenGrant(ue, refresh);
    refresh = next.refresh_token!;
    return next.claims()!.val_service_ids;
  };
}

const confIdOf = (res: ApiResponse) => new URL(res.headers.get('location')!).pathname.split('/').pop()!;

test('create with valUserId and valUeId → both users have the service; PUT removes alice; PATCH restores; DELETE → 204, then 404', async () => {
  const created = await ssIpp(server, 'POST', C, C, {
    token: mcx,
    json: { valServerId: MCX, valSvcConf: [{ valServiceId: 'mcptt-1', idList: [{ valUserId: 'alice' }, { valUeId: 'ue-bob-1' }] }] },
  });
  expect(created.status).toBe(201);
  const confId = confIdOf(created);

  const alice = await login('alice');
  expect(alice.claims()!.val_service_ids).toEqual(['base-0', 'mcptt-1']);
  const bob = await login('bob');
  expect(bob.claims()!.val_service_ids).toEqual(['base-0', 'mcptt-1']);
  const aliceRefresh = session(alice);
  const bobRefresh = session(bob);

  // UpdateIndValServicesConf without alice: her next refresh no longer has the service; bob's still does.
  const put = await ssIpp(server, 'PUT', I, `${C}/${confId}`, {
    token: mcx,
    json: { valServerId: MCX, valSvcConf: [{ valServiceId: 'mcptt-1', idList: [{ valUeId: 'ue-bob-1' }] }] },
  });
  expect(put.status).toBe(200);
  expect(await aliceRefresh()).toEqual(['base-0']);
  expect(await bobRefresh()).toEqual(['base-0', 'mcptt-1']);

  // ModifyIndValServicesConf (merge patch) with her back in the list: restored at the next refresh.
  const patch = await ssIpp(server, 'PATCH', I, `${C}/${confId}`, {
    token: mcx,
    json: { valSvcConf: [{ valServiceId: 'mcptt-1', idList: [{ valUserId: 'alice' }, { valUeId: 'ue-bob-1' }] }] },
  });
  expect(patch.status).toBe(200);
  expect(await aliceRefresh()).toEqual(['base-0', 'mcptt-1']);

  // The operator unbinds bob's UE: the service provisioned to it no longer reaches him.
  await cliOk(server.env, ['user', 'ue', 'remove', 'bob', 'ue-bob-1']);
  expect(await bobRefresh()).toEqual(['base-0']);
  await cliOk(server.env, ['user', 'ue', 'add', 'bob', 'ue-bob-1']);
  expect(await bobRefresh()).toEqual(['base-0', 'mcptt-1']);

  expect((await ssIpp(server, 'DELETE', I, `${C}/${confId}`, { token: mcx })).status).toBe(204);
  expect((await ssIpp(server, 'GET', I, `${C}/${confId}`, { token: mcx })).status).toBe(404);
  expect([await aliceRefresh(), await bobRefresh()]).toEqual([['base-0'], ['base-0']]);
});

test('two VAL servers sharing a VAL service each own only their configurations; the user keeps it while either lists her', async () => {
  const conf = (valServerId: string) => ({ valServerId, valSvcConf: [{ valServiceId: 'shared-9', idList: [{ valUserId: 'carol' }] }] });
  const mine = confIdOf(await ssIpp(server, 'POST', C, C, { token: mcx, json: conf(MCX) }));
  const theirs = confIdOf(await ssIpp(server, 'POST', C, C, { token: b, json: conf(B) }));
  const carol = session(await login('carol'));
  expect(await carol()).toEqual(['base-0', 'shared-9']);

  // Neither sees, changes or deletes the other's configuration.
  expect((await ssIpp(server, 'GET', I, `${C}/${theirs}`, { token: mcx })).status).toBe(404);
  expect((await ssIpp(server, 'DELETE', I, `${C}/${mine}`, { token: b })).status).toBe(404);
  const listed = (await ssIpp(server, 'GET', C, C, { token: b })).body as { valServerId: string }[];
  expect(listed.map((c) => c.valServerId)).toEqual([B]);

  // MCX deletes its configuration: carol keeps shared-9 through B's; when B deletes too, it is gone.
  expect((await ssIpp(server, 'DELETE', I, `${C}/${mine}`, { token: mcx })).status).toBe(204);
  expect(await carol()).toEqual(['base-0', 'shared-9']);
  expect((await ssIpp(server, 'DELETE', I, `${C}/${theirs}`, { token: b })).status).toBe(204);
  expect(await carol()).toEqual(['base-0']);
});

test('concurrent PUTs of one configuration: every one succeeds and the result is exactly one of them', async () => {
  const confId = confIdOf(
    await ssIpp(server, 'POST', C, C, { token: mcx, json: { valServerId: MCX, valSvcConf: [{ valServiceId: 'mcptt-1', idList: [{ valUserId: 'x0' }] }] } }),
  );
  const sets = Array.from({ length: 8 }, (_, i) => Array.from({ length: 200 }, (_, j) => (j % 2 ? { valUeId: `ue-${i}-${j}` } : { valUserId: `u-${i}-${j}` })));
  const results = await Promise.all(
    sets.map((idList) =>
      ssIpp(server, 'PUT', I, `${C}/${confId}`, { token: mcx, json: { valServerId: MCX, valSvcConf: [{ valServiceId: 'mcptt-1', idList }] } }),
    ),
  );
  expect(results.map((r) => r.status)).toEqual(sets.map(() => 200));
  const final = (await ssIpp(server, 'GET', I, `${C}/${confId}`, { token: mcx })).body as { valSvcConf: { idList: object[] }[] };
  const key = (list: object[]) =>
    list
      .map((t) => JSON.stringify(t))
      .sort()
      .join();
  expect(sets.filter((s) => key(s) === key(final.valSvcConf[0]!.idList))).toHaveLength(1);
});
