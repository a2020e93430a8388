// Scale: one Provide_Configuration with 100,000 VAL user IDs succeeds through HTTP (set-based SQL, within the
// documented body limit), a replace of it moves only the difference, and GET pages through it.
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { callDocumented, provisioningToken, userIds, valServerClient } from './helpers/provisioning.ts';
import { MAX_BODY_BYTES } from '../src/provisioning/schema.ts';
import { servicesOfUser } from '../src/provisioning/store.ts';

let database: TestDatabase;
let server: TestServer;
let token: string;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, [
    'val-server',
    'add',
    'big-server',
    '--client-id',
    'big',
    '--secret',
    'big-secret-0123456789',
    '--services',
    'big-1',
    '--max-users',
    '100000',
  ]);
  token = await provisioningToken(await valServerClient(server, 'big', 'big-secret-0123456789'), server);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const provide = (users: string[]) =>
  callDocumented(server, 'POST', '/configurations', '/configurations', {
    token,
    json: { requesterIdentity: 'big-server', valServiceInfos: [{ valServiceId: 'big-1', valUserIds: users }] },
  });
const count = async () => ((await database.db('val_service_users').where({ val_service_id: 'big-1' }).count({ n: '*' }).first()) as { n: number }).n;

test('one Provide_Configuration with 100,000 VAL user IDs, then a replace that moves only the difference', async () => {
  // Realistic identifiers (~40 characters): 100,000 of them stay well inside the body limit.
  const first = userIds('sip:user-with-a-longer-identifier-', 100_000);
  expect(Buffer.byteLength(JSON.stringify(first))).toBeLessThan(MAX_BODY_BYTES);
  expect((await provide(first)).body).toEqual({ result: 'SUCCESS' });
  expect(await count()).toBe(100_000);
  expect(await servicesOfUser(database.db, first[99_999]!)).toEqual(['big-1']);

  const second = userIds('sip:user-with-a-longer-identifier-', 100_000, 50_000);
  expect((await provide(second)).status).toBe(200);
  expect(await count()).toBe(100_000);
  expect(await servicesOfUser(database.db, first[0]!)).toEqual([]);
  const audit = (await cliOk(server.env, ['audit', 'list', '--json', '--limit', '1', '--action', 'provisioning.provide_configuration'])).trim();
  expect(JSON.parse(audit).details).toEqual({ services: [{ valServiceId: 'big-1', users: 100_000, added: 50_000, removed: 50_000 }] });

  // The largest page, and its cursor continuing exactly where it stopped.
  const page = await callDocumented(server, 'GET', '/configurations/{valServiceId}', '/configurations/big-1?limit=10000', { token });
  const body = page.body as { valUserIds: string[]; nextCursor: string };
  expect(body.valUserIds).toHaveLength(10_000);
  const next = await callDocumented(server, 'GET', '/configurations/{valServiceId}', `/configurations/big-1?limit=10000&cursor=${body.nextCursor}`, { token });
  expect((next.body as { valUserIds: string[] }).valUserIds[0]! > body.valUserIds[9_999]!).toBe(true);
}, 120_000);
