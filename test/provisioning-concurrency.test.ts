// Concurrent Provide_Configuration calls for the same VAL service: the final set is exactly one of the submitted sets
// (never a mix), and requests naming the same services in different orders do not deadlock.
import { createKnex, type Db } from '../src/db/knex.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { call, provisioningToken, userIds, valServerClient } from './helpers/provisioning.ts';

let database: TestDatabase;
let server: TestServer;
let token: string;
let pool: Db;

beforeAll(async () => {
  database = await createTestDatabase();
  // A pool as large as the burst, so the calls really run side by side in the database.
  pool = createKnex(database.url, { max: 12 });
  server = await startTestServer({ ...database, db: pool });
  await cliOk(server.env, ['val-server', 'add', 'val-server-1', '--client-id', 'vs1', '--secret', 'vs1-secret-0123456789', '--services', 'race-1,race-2']);
  token = await provisioningToken(await valServerClient(server, 'vs1', 'vs1-secret-0123456789'), server);
});

afterAll(async () => {
  await server?.close();
  await pool?.destroy();
  await database?.drop();
});

const provide = (infos: { valServiceId: string; valUserIds: string[] }[]) =>
  call(server, 'POST', '/configurations', { token, json: { requesterIdentity: 'val-server-1', valServiceInfos: infos } });
const stored = async (service: string) => (await database.db('val_service_users').where({ val_service_id: service }).pluck('val_user_id')).sort() as string[];

test.each([1, 2, 3])('round %i: eight concurrent replaces of one service leave exactly one submitted set', async (round) => {
  // Overlapping sets, so a mix (one call's deletes racing another's inserts) would be a set nobody submitted.
  const sets = Array.from({ length: 8 }, (_, i) => userIds(`r${round}-`, 3000, i * 1000).sort());
  const results = await Promise.all(sets.map((users) => provide([{ valServiceId: 'race-1', valUserIds: users }])));
  expect(results.map((r) => r.status)).toEqual(sets.map(() => 200));
  const final = await stored('race-1');
  expect(final).toHaveLength(3000);
  expect(sets.some((s) => s.every((u, i) => final[i] === u))).toBe(true);
});

test('requests naming the same services in opposite orders all succeed (locks taken in one global order)', async () => {
  const calls = Array.from({ length: 10 }, (_, i) => {
    const a = { valServiceId: 'race-1', valUserIds: userIds(`o${i}-`, 200) };
    const b = { valServiceId: 'race-2', valUserIds: userIds(`o${i}-`, 200) };
    return provide(i % 2 ? [a, b] : [b, a]);
  });
  const results = await Promise.all(calls);
  expect(results.map((r) => r.status)).toEqual(calls.map(() => 200));
  // Both services end with the set of the same request: the later transaction replaced both.
  const [one, two] = [await stored('race-1'), await stored('race-2')];
  expect(one).toEqual(two);
  expect(one).toHaveLength(200);
});
