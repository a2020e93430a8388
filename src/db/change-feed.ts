// Per-process caches of rarely changed tables (clients, resource servers, partners, the access token deny-list, VAL servers),
// dropped on every change by any instance.
//
// Triggers (migrations 202611231330, 202611231335, 202611291020) NOTIFY on commit; each serving process LISTENs on a connection
// of its own and drops the named cache. The caches are used only while that path is proven to work end to end:
// every second the process NOTIFYs a private channel through its ordinary pool and must hear it back. PostgreSQL
// delivers notifications in commit order, so hearing a ping sent at time t means every change committed before t
// has been heard. Otherwise (listener lost, pool or database slow, not yet connected, or a pooler in front that
// does not carry LISTEN) every lookup goes to the database, as it would without a cache. A change made by this
// process (the CLI in-process, tests) also drops the caches at once, without waiting for its notification.
//
// The listener connects through the pool's host connector (src/db/failover.ts), so after a failover it LISTENs on the
// new primary; notifications sent while it was away are lost, so every (re)connection starts from empty caches.
import crypto from 'node:crypto';
import pg from 'pg';
import { connectorOf, type Db } from './knex.ts';
import type { HostConnector } from './failover.ts';

export const CHANGE_CHANNEL = 'idms_cache';
export type CachedTable = 'clients' | 'resource_servers' | 'partners' | 'revoked_access_tokens' | 'val_servers';
const TABLES: readonly CachedTable[] = ['clients', 'resource_servers', 'partners', 'revoked_access_tokens', 'val_servers'];

const PING_MS = 1000;
/** Without a ping heard back for this long, the caches are not used. */
const STALE_MS = 2500;
/** Without a ping heard back for this long, the listening connection is replaced. */
const LOST_MS = 10_000;
const MAX_ENTRIES = 2000;

type Entry = { value: unknown };

class TableCache {
  readonly entries = new Map<string, Entry>();
  /** Bumped whenever the cache is dropped, so a lookup that raced with a change does not store its old answer. */
  epoch = 0;

  drop(): void {
    this.entries.clear();
    this.epoch++;
  }
}

export type ChangeFeed = {
  /** True while cached answers may be used (listener connected, pinged recently). */
  readonly live: boolean;
  close(): Promise<void>;
};

class Feed implements ChangeFeed {
  readonly caches = new Map<CachedTable, TableCache>(TABLES.map((t) => [t, new TableCache()]));
  readonly #db: Db;
  readonly #connector: HostConnector;
  readonly #unwatch: () => void;
  readonly #log: (line: string) => void;
  #client: pg.Client | undefined;
  #lastPing = 0;
  readonly #pingChannel = `${CHANGE_CHANNEL}_ping_${crypto.randomBytes(6).toString('hex')}`;
  readonly #pings = new Map<string, number>();
  #nonce = 0;
  #connected = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #retryMs = 500;
  users = 1;

  constructor(db: Db, connector: HostConnector, log: (line: string) => void) {
    this.#db = db;
    this.#connector = connector;
    this.#log = log;
    // The pool lost the listener's server (primary killed, demoted): the listener is on it too, or soon will be.
    this.#unwatch = connector.onFailure((host) => {
      if (this.#client && connector.hostOf(this.#client) === host) this.#lost(this.#client, 'database server lost');
    });
  }

  get live(): boolean {
    return this.#connected && performance.now() - this.#lastPing < STALE_MS;
  }

  dropAll(): void {
    for (const c of this.caches.values()) c.drop();
  }

  /** Connects now; on failure the server runs without the caches and the feed keeps trying in the background. */
  async start(): Promise<void> {
    try {
      await this.#connect();
    } catch (err) {
      this.#log(`cache invalidation listener not connected (${err instanceof Error ? err.message : String(err)}); caches bypassed until it connects`);
      this.#reconnectLater();
    }
  }

  async #connect(): Promise<void> {
    const client = await this.#connector.connect({ keepAlive: true, keepAliveInitialDelayMillis: 10_000, connectionTimeoutMillis: 5000, query_timeout: STALE_MS });
    client.on('notification', (n) => {
      if (n.channel === this.#pingChannel) {
        const sent = this.#pings.get(n.payload ?? '');
        if (sent !== undefined && client === this.#client) this.#lastPing = Math.max(this.#lastPing, sent);
        return;
      }
      if (n.channel !== CHANGE_CHANNEL) return;
      const cache = this.caches.get(n.payload as CachedTable);
      if (cache) cache.drop();
      else this.dropAll(); // a name this version does not know: drop everything rather than guess
    });
    client.on('error', () => this.#lost(client, 'connection error'));
    client.on('end', () => this.#lost(client, 'connection closed'));
    try {
      await client.query(`listen ${CHANGE_CHANNEL}`);
      await client.query(`listen ${this.#pingChannel}`);
    } catch (err) {
      client.end().catch(() => {});
      throw err;
    }
    if (this.#closed) {
      await client.end();
      return;
    }
    this.#client = client;
    // Changes made while nobody listened were not heard: start from empty caches.
    this.dropAll();
    this.#connected = true;
    this.#lastPing = performance.now();
    this.#retryMs = 500;
    this.#schedulePing();
  }

  #schedulePing(): void {
    this.#timer = setTimeout(() => void this.#ping(), PING_MS);
    this.#timer.unref();
  }

  async #ping(): Promise<void> {
    const client = this.#client;
    if (!client || this.#closed) return;
    const now = performance.now();
    if (now - this.#lastPing > LOST_MS) {
      this.#lost(client, `no notification heard for ${Math.round((now - this.#lastPing) / 1000)} s`);
      return;
    }
    const nonce = String(++this.#nonce);
    this.#pings.set(nonce, now);
    for (const [n, sent] of this.#pings) if (sent < now - LOST_MS) this.#pings.delete(n);
    this.#schedulePing();
    // Through the pool, as the trigger's notifications come from other sessions; heard back in the listener.
    await this.#db.raw('select pg_notify(?, ?)', [this.#pingChannel, nonce]).catch(() => {});
  }

  #lost(client: pg.Client, why: string): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    this.#connected = false;
    this.dropAll();
    clearTimeout(this.#timer);
    client.end().catch(() => {});
    if (this.#closed) return;
    this.#log(`cache invalidation listener: ${why}; caches bypassed until it reconnects`);
    this.#reconnectLater();
  }

  #reconnectLater(): void {
    this.#timer = setTimeout(() => {
      this.#connect().catch(() => {
        // At most 2 s apart: after a failover the caches come back soon after the new primary does.
        this.#retryMs = Math.min(this.#retryMs * 2, 2000);
        this.#reconnectLater();
      });
    }, this.#retryMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (--this.users > 0) return;
    this.#closed = true;
    this.#connected = false;
    clearTimeout(this.#timer);
    this.#unwatch();
    feeds.delete(this.#db);
    all.delete(this);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}

const feeds = new WeakMap<Db, Feed>();
const all = new Set<Feed>();

/**
 * Starts listening for changes on this database (one listener per knex instance, shared by whoever starts it).
 * Until this is called for a database, lookups through `cached` always read the table (e.g. CLI commands).
 */
export async function startChangeFeed(db: Db, log: (line: string) => void = () => {}): Promise<ChangeFeed> {
  const existing = feeds.get(db);
  if (existing) {
    existing.users++;
    return existing;
  }
  // The same hosts as the pool's connections: on the primary, wherever it is now.
  const feed = new Feed(db, connectorOf(db), log);
  feeds.set(db, feed);
  all.add(feed);
  await feed.start();
  return feed;
}

/**
 * The cached answer for `key` in `table`, or `load()`'s (which is cached when no change raced with it).
 * Absent rows (undefined) are cached too; the number of entries per table is bounded.
 */
export async function cached<V>(db: Db, table: CachedTable, key: string, load: () => Promise<V>): Promise<V> {
  const feed = feeds.get(db);
  if (!feed?.live) return load();
  const cache = feed.caches.get(table)!;
  const hit = cache.entries.get(key);
  if (hit) return hit.value as V;
  const epoch = cache.epoch;
  const value = await load();
  if (cache.epoch === epoch && feed.live) {
    if (cache.entries.size >= MAX_ENTRIES) cache.entries.delete(cache.entries.keys().next().value!);
    cache.entries.set(key, { value });
  }
  return value;
}

/** Drops this process's cached copies of `table` at once (after a change made here; other processes hear the NOTIFY). */
export function tableChanged(table: CachedTable): void {
  for (const feed of all) feed.caches.get(table)!.drop();
}
