// Two VAL servers whose SLAs share a VAL service ID (docs/provisioning.md, "Shared VAL services"): each owns the
// entries it provisioned; neither can read, replace, remove or delete the other's; a user keeps the service while
// any VAL server lists them.
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { callDocumented, provisioningToken, valServerClient } from './helpers/provisioning.ts';
import { servicesOfUser } from '../src/provisioning/store.ts';

let database: TestDatabase;
let server: TestServer;
const tokens: Record<'a' | 'b', string> = { a: '', b: '' };
const IDENTITY = { a: 'val-server-a', b: 'val-server-b' } as const;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, [
    'val-server',
    'add',
    IDENTITY.a,
    '--client-id',
    'a',
    '--secret',
    'a-secret-0123456789',
    '--services',
    'shared-1,own-a',
    '--max-users',
    '3',
  ]);
  await cliOk(server.env, [
    'val-server',
    'add',
    IDENTITY.b,
    '--client-id',
    'b',
    '--secret',
    'b-secret-0123456789',
    '--services',
    'shared-1',
    '--max-users',
    '3',
  ]);
  for (const who of ['a', 'b'] as const) {
    const client: oidc.Configuration = await valServerClient(server, who, `${who}-secret-0123456789`);
    tokens[who] = await provisioningToken(client, server);
  }
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const provide = (who: 'a' | 'b', users: string[]) =>
  callDocumented(server, 'POST', '/configurations', '/configurations', {
    token: tokens[who],
    json: { requesterIdentity: IDENTITY[who], valServiceInfos: [{ valServiceId: 'shared-1', valUserIds: users }] },
  });
const list = async (who: 'a' | 'b') =>
  ((await callDocumented(server, 'GET', '/configurations/{valServiceId}', '/configurations/shared-1', { token: tokens[who] })).body as { valUserIds: string[] })
    .valUserIds;
const patch = (who: 'a' | 'b', json: unknown) =>
  callDocumented(server, 'PATCH', '/configurations/{valServiceId}', '/configurations/shared-1', { token: tokens[who], json });
const hasShared = async (user: string) => (await servicesOfUser(database.db, user)).includes('shared-1');

test('each VAL server sees and replaces only its own entries; the user has the service while anyone lists them', async () => {
  expect((await provide('a', ['u1', 'u2'])).status).toBe(200);
  expect((await provide('b', ['u2', 'u3'])).status).toBe(200);
  expect(await list('a')).toEqual(['u1', 'u2']);
  expect(await list('b')).toEqual(['u2', 'u3']);
  // u2 is listed by both and appears once in the user's tokens.
  expect(await servicesOfUser(database.db, 'u2')).toEqual(['shared-1']);

  // A's replace with an empty set removes A's entries only.
  expect((await provide('a', [])).status).toBe(200);
  expect(await list('a')).toEqual([]);
  expect(await list('b')).toEqual(['u2', 'u3']);
  expect([await hasShared('u1'), await hasShared('u2'), await hasShared('u3')]).toEqual([false, true, true]);
});

test("PATCH remove and DELETE by one VAL server never touch the other's users", async () => {
  expect((await provide('a', ['u2', 'u4'])).status).toBe(200);
  expect((await patch('a', { remove: ['u3'] })).body).toEqual({ result: 'SUCCESS', added: 0, removed: 0 });
  expect(await hasShared('u3')).toBe(true);
  expect((await callDocumented(server, 'DELETE', '/configurations/{valServiceId}', '/configurations/shared-1', { token: tokens.a })).body).toEqual({
    result: 'SUCCESS',
    removed: 2,
  });
  expect(await list('b')).toEqual(['u2', 'u3']);
  expect([await hasShared('u2'), await hasShared('u3'), await hasShared('u4')]).toEqual([true, true, false]);
  // B removing u2 ends it: A no longer lists u2 either.
  expect((await patch('b', { remove: ['u2'] })).body).toEqual({ result: 'SUCCESS', added: 0, removed: 1 });
  expect(await hasShared('u2')).toBe(false);
});

test("each VAL server's quota counts its own entries", async () => {
  expect((await provide('b', ['b1', 'b2', 'b3'])).status).toBe(200);
  expect((await provide('a', ['a1', 'a2', 'a3'])).status).toBe(200);
  expect((await patch('a', { add: ['a4'] })).status).toBe(403);
  expect(await list('b')).toEqual(['b1', 'b2', 'b3']);
});

test("the operator's service revoke removes a user for every VAL server; service list shows each user once", async () => {
  expect((await provide('a', ['both'])).status).toBe(200);
  expect((await provide('b', ['both'])).status).toBe(200);
  expect((await cliOk(server.env, ['service', 'list', 'shared-1'])).trim().split('\n')).toEqual(['both']);
  await cliOk(server.env, ['service', 'revoke', 'shared-1', 'both']);
  expect(await hasShared('both')).toBe(false);
  expect([await list('a'), await list('b')]).toEqual([[], []]);
});
