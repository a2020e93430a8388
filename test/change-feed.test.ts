// Per-process caches (src/db/change-feed.ts): a handle passed to whoever reads through it, served from memory, dropped by
// any session's change, bypassed while the listener is down.
import { createCaches, NO_CACHE, startChangeFeed, type Caches, type ChangeFeed, type ProcessCaches } from '../src/db/change-feed.ts';
import { createKnex, type Db } from '../src/db/knex.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

let database: TestDatabase;
let other: Db;
let feed: ChangeFeed;
let caches: ProcessCaches;
let loads = 0;

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const scopeOf = (identifier: string, through: Caches = caches) =>
  through.read('resource_servers', identifier, async () => {
    loads++;
    return ((await database.db('resource_servers').where({ identifier }).first()) as { scope: string } | undefined)?.scope;
  });

beforeAll(async () => {
  database = await createTestDatabase();
  // Another session, as another instance or the CLI would be: its writes do not touch this process's caches directly.
  other = createKnex(database.url, { max: 1 });
  await other('resource_servers').insert({ identifier: 'https://skms.example', scope: 'a' });
  caches = createCaches();
  feed = await startChangeFeed(database.db, caches);
  await until('listener live', () => feed.live);
});

afterAll(async () => {
  await feed?.close();
  await other?.destroy();
  await database?.drop();
});

test('a cached answer is served from memory, absent rows included', async () => {
  loads = 0;
  expect(await scopeOf('https://skms.example')).toBe('a');
  expect(await scopeOf('https://skms.example')).toBe('a');
  expect(await scopeOf('https://nobody.example')).toBeUndefined();
  expect(await scopeOf('https://nobody.example')).toBeUndefined();
  expect(loads).toBe(2);
});

test('a handle without a change feed, and NO_CACHE, read the table every time', async () => {
  loads = 0;
  const undriven = createCaches();
  for (const through of [undriven, NO_CACHE]) {
    await scopeOf('https://skms.example', through);
    await scopeOf('https://skms.example', through);
  }
  expect(loads).toBe(4);
});

test('a change made through the handle drops its table at once, without waiting for the notification', async () => {
  await scopeOf('https://skms.example');
  loads = 0;
  caches.changed('resource_servers');
  await scopeOf('https://skms.example');
  expect(loads).toBe(1);
  // Other tables keep their entries.
  await caches.read('partners', 'https://partner.example', async () => 'kept');
  caches.changed('resource_servers');
  expect(await caches.read('partners', 'https://partner.example', async () => 'reloaded')).toBe('kept');
});

test('caughtUp: once it resolves, every change another session committed before it has been heard', async () => {
  for (const scope of ['x1', 'x2', 'x3']) {
    await scopeOf('https://skms.example');
    await other('resource_servers').where({ identifier: 'https://skms.example' }).update({ scope });
    await feed.caughtUp();
    expect(await scopeOf('https://skms.example')).toBe(scope);
  }
});

test("another session's committed change drops the cache (NOTIFY), a rolled-back one does not", async () => {
  await scopeOf('https://skms.example');
  await other
    .transaction(async (trx) => {
      await trx('resource_servers').where({ identifier: 'https://skms.example' }).update({ scope: 'rolled-back' });
      throw new Error('rollback');
    })
    .catch(() => {});
  await other('resource_servers').insert({ identifier: 'https://nobody.example', scope: 'new' });
  await other('resource_servers').where({ identifier: 'https://skms.example' }).update({ scope: 'b' });
  await until('change heard', async () => (await scopeOf('https://skms.example')) === 'b', 1000);
  expect(await scopeOf('https://nobody.example')).toBe('new');
});

test('while the listening connection is gone every lookup reads the table, until it is back', async () => {
  await scopeOf('https://skms.example');
  const killed = await other.raw(
    "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query like 'listen idms_cache%'",
  );
  expect(killed.rowCount).toBe(1);
  await until('listener lost', () => !feed.live);
  loads = 0;
  await scopeOf('https://skms.example');
  await scopeOf('https://skms.example');
  expect(loads).toBe(2);
  // A change while nobody listened is not missed: the caches start empty when the listener is back.
  await other('resource_servers').where({ identifier: 'https://skms.example' }).update({ scope: 'c' });
  await until('listener back', () => feed.live, 5000);
  expect(await scopeOf('https://skms.example')).toBe('c');
});
