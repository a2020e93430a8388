// The provisioning store's inserts without ON CONFLICT (issue 16): where nothing else can write the same entry, a
// repeat in the list itself is the only possible collision, and it must be stored once, not fail the transaction.
// The HTTP edge refuses repeats (docs/provisioning.md), so these run against the store's functions directly.
import { addServiceUsers, insertConfiguration, insertValServer, lockServices, replaceConfigurationPairs } from '../src/provisioning/store.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

let database: TestDatabase;
const OWNER = 'val-server-store';

beforeAll(async () => {
  database = await createTestDatabase();
  await insertValServer(database.db, { requesterIdentity: OWNER, clientId: OWNER, allowedServiceIds: ['svc-1', 'svc-2'] });
});

afterAll(async () => {
  await database?.drop();
});

const stored = async (confId: string) =>
  (await database.db('val_service_users').where({ conf_id: confId }).orderBy(['val_service_id', 'val_user_id']).select('val_service_id', 'val_user_id')).map(
    (r: { val_service_id: string; val_user_id: string }) => `${r.val_service_id} ${r.val_user_id}`,
  );

test("a new configuration's repeated pairs are stored once; a later replace keeps what stays", async () => {
  const replace = (list: [string, string][], fresh: boolean) =>
    database.db.transaction(async (trx) => {
      if (fresh) await insertConfiguration(trx, { confId: 'conf-fresh', owner: OWNER, suppFeat: '' });
      await lockServices(trx, ['svc-1', 'svc-2']);
      const pairs = list.map(([valServiceId, id]) => ({ valServiceId, kind: 'user' as const, id }));
      return replaceConfigurationPairs(trx, 'conf-fresh', OWNER, pairs, fresh);
    });
  const created = [
    ['svc-1', 'u1'],
    ['svc-1', 'u2'],
    ['svc-1', 'u1'],
    ['svc-2', 'u1'],
  ] as [string, string][];
  expect(await replace(created, true)).toEqual({ added: 3, removed: 0 });
  expect(await stored('conf-fresh')).toEqual(['svc-1 u1', 'svc-1 u2', 'svc-2 u1']);
  const replaced = [
    ['svc-1', 'u2'],
    ['svc-1', 'u3'],
    ['svc-1', 'u3'],
  ] as [string, string][];
  expect(await replace(replaced, false)).toEqual({ added: 1, removed: 2 });
  expect(await stored('conf-fresh')).toEqual(['svc-1 u2', 'svc-1 u3']);
});

test('entries of a configuration: repeats and entries already there are added once', async () => {
  await insertConfiguration(database.db, { confId: 'conf-compat', owner: OWNER, suppFeat: '' });
  const add = (ids: string[]) =>
    database.db.transaction(async (trx) => {
      await lockServices(trx, ['svc-1']);
      return addServiceUsers(trx, 'svc-1', ids, OWNER, 'conf-compat');
    });
  expect(await add(['a', 'b', 'a'])).toBe(2);
  expect(await add(['b', 'c', 'c'])).toBe(1);
  expect(await stored('conf-compat')).toEqual(['svc-1 a', 'svc-1 b', 'svc-1 c']);
});
