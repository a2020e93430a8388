// The PostgreSQL adapter honours oidc-provider's adapter contract (STYLE anchor 5), on a real database.
import { PostgresAdapter, sweepExpiredPayloads } from '../src/oidc/adapter.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database?.drop();
});

test('upsert then find returns the payload; another model with the same id is separate', async () => {
  const codes = new PostgresAdapter(database.db, 'AuthorizationCode');
  const sessions = new PostgresAdapter(database.db, 'Session');
  await codes.upsert('x1', { grantId: 'g1', accountId: 'alice' }, 60);
  expect(await codes.find('x1')).toEqual({ grantId: 'g1', accountId: 'alice' });
  expect(await sessions.find('x1')).toBeUndefined();
  await codes.upsert('x1', { grantId: 'g1', accountId: 'bob' }, 60);
  expect((await codes.find('x1'))?.accountId).toBe('bob');
});

test('expired payloads are not found, and the sweeper removes them', async () => {
  const tokens = new PostgresAdapter(database.db, 'RefreshToken');
  await tokens.upsert('old', { grantId: 'g2' }, 1);
  await database.db('oidc_payloads').where({ id: 'old' }).update({ expires_at: database.db.raw("now() - interval '1 second'") });
  expect(await tokens.find('old')).toBeUndefined();
  expect(await sweepExpiredPayloads(database.db)).toBeGreaterThanOrEqual(1);
  expect(await database.db('oidc_payloads').where({ id: 'old' }).first()).toBeUndefined();
});

test('payloads without expiry (clients) never expire', async () => {
  const clients = new PostgresAdapter(database.db, 'Client');
  await clients.upsert('c1', { client_id: 'c1' } as never);
  expect(await clients.find('c1')).toEqual({ client_id: 'c1' });
});

test('consume marks the payload consumed with a timestamp', async () => {
  const codes = new PostgresAdapter(database.db, 'AuthorizationCode');
  await codes.upsert('c2', { grantId: 'g3' }, 60);
  await codes.consume('c2');
  const found = await codes.find('c2');
  expect(found?.consumed).toEqual(expect.any(Number));
  expect(Math.abs(found!.consumed - Date.now() / 1000)).toBeLessThan(60);
});

test('findByUid and findByUserCode use their columns', async () => {
  const sessions = new PostgresAdapter(database.db, 'Session');
  await sessions.upsert('s1', { uid: 'u-1', accountId: 'alice' }, 60);
  expect((await sessions.findByUid('u-1'))?.accountId).toBe('alice');
  const devices = new PostgresAdapter(database.db, 'DeviceCode');
  await devices.upsert('d1', { userCode: 'ABCD-EFGH' }, 60);
  expect(await devices.findByUserCode('ABCD-EFGH')).toEqual({ userCode: 'ABCD-EFGH' });
});

test('revokeByGrantId deletes only that grant\'s records of that model; destroy deletes one', async () => {
  const tokens = new PostgresAdapter(database.db, 'AccessToken');
  const codes = new PostgresAdapter(database.db, 'AuthorizationCode');
  await tokens.upsert('t1', { grantId: 'gx' }, 60);
  await tokens.upsert('t2', { grantId: 'gx' }, 60);
  await tokens.upsert('t3', { grantId: 'gy' }, 60);
  await codes.upsert('c9', { grantId: 'gx' }, 60);
  await tokens.revokeByGrantId('gx');
  expect(await tokens.find('t1')).toBeUndefined();
  expect(await tokens.find('t2')).toBeUndefined();
  expect(await tokens.find('t3')).toBeDefined();
  expect(await codes.find('c9')).toBeDefined();
  await tokens.destroy('t3');
  expect(await tokens.find('t3')).toBeUndefined();
});
