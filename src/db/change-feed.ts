// Per-process caches of rarely changed tables (clients, resource servers, partners, the access token deny-list, VAL servers),
// dropped on every change by any instance.
//
// The caches are a handle (`createCaches`), made by the composition root (src/server.ts) and passed to the stores that
// cache (STYLE 13): a call site that is given `caches` may be answered from memory, one given NO_CACHE (the CLI, the
// operator's use cases) always reads the table. A handle is used only while a change feed drives it:
//
// Triggers (migrations 202611231330, 202611231335, 202611291020, 202611291100) NOTIFY on commit; the change feed LISTENs
// on a connection of its own and drops the named table from its handle. The caches are used only while that path is
// proven to work end to end: every second the feed NOTIFYs a private channel through its ordinary pool and must hear it
// back. PostgreSQL delivers notifications in commit order, so hearing a ping sent at time t means every change
// committed before t has been heard. Otherwise (listener lost, pool or database slow, not yet connected, or a pooler in
// front that does not carry LISTEN) every lookup goes to the database, as it would without a cache. A change the
// serving process makes itself (a revocation, a client record written through its adapter) also drops the handle at
// once (`caches.changed`), without waiting for its notification; a change made by another process (the CLI, another
// instance) reaches it through the notification only.
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

/** What a store that caches is given: the process's handle (createCaches) or NO_CACHE. */
export type Caches = {
  /**
   * The cached answer for `key` in `table`, or `load()`'s (which is cached when no change raced with it).
   * Absent rows (undefined) are cached too; the number of entries per table is bounded.
   */
  read<V>(table: CachedTable, key: string, load: () => Promise<V>): Promise<V>;
  /** Drops the cached copies of `table` at once, after a change made through this handle (other processes hear the NOTIFY). */
  changed(table: CachedTable): void;
};

/** No cache: every read goes to the table (CLI commands and the operator's use cases, which change what servers cache). */
export const NO_CACHE: Caches = Object.freeze({
  read: <V>(_table: CachedTable, _key: string, load: () => Promise<V>): Promise<V> => load(),
  changed: () => {},
});

/** A process's caches; used only while the change feed driving them (startChangeFeed) is live, otherwise every read loads. */
export class ProcessCaches implements Caches {
  readonly #tables = new Map<CachedTable, TableCache>(TABLES.map((t) => [t, new TableCache()]));
  #feed: { readonly live: boolean } | undefined;

  /** Set by startChangeFeed: the caches are used while `feed.live` holds. */
  drivenBy(feed: { readonly live: boolean }): void {
    if (this.#feed) throw new Error('these caches already have a change feed');
    this.#feed = feed;
  }

  async read<V>(table: CachedTable, key: string, load: () => Promise<V>): Promise<V> {
    if (!this.#feed?.live) return load();
    const cache = this.#tables.get(table)!;
    const hit = cache.entries.get(key);
    if (hit) return hit.value as V;
    const epoch = cache.epoch;
    const value = await load();
    if (cache.epoch === epoch && this.#feed.live) {
      if (cache.entries.size >= MAX_ENTRIES) cache.entries.delete(cache.entries.keys().next().value!);
      cache.entries.set(key, { value });
    }
    return value;
  }

  changed(table: CachedTable): void {
    this.#tables.get(table)!.drop();
  }

  dropAll(): void {
    for (const c of this.#tables.values()) c.drop();
  }

  /** Whether `name` (a notification's payload) is a table these caches hold. */
  holds(name: string): name is CachedTable {
    return this.#tables.has(name as CachedTable);
  }
}

/** The caches of one serving process, for the composition root to pass to the stores that cache. */
export function createCaches(): ProcessCaches {
  return new ProcessCaches();
}

export type ChangeFeed = {
  /** True while cached answers may be used (listener connected, pinged recently). */
  readonly live: boolean;
  /**
   * Resolves once every change committed before the call has been heard (a ping of its own heard back: PostgreSQL
   * delivers notifications in commit order), or the caches are no longer used; at once while they are not.
   */
  caughtUp(): Promise<void>;
  close(): Promise<void>;
};

class Feed implements ChangeFeed {
  readonly #caches: ProcessCaches;
  readonly #db: Db;
  readonly #connector: HostConnector;
  readonly #unwatch: () => void;
  readonly #log: (line: string) => void;
  #client: pg.Client | undefined;
  #lastPing = 0;
  readonly #pingChannel = `${CHANGE_CHANNEL}_ping_${crypto.randomBytes(6).toString('hex')}`;
  readonly #pings = new Map<string, number>();
  /** caughtUp() calls waiting for their ping. */
  readonly #waiters = new Map<string, () => void>();
  #nonce = 0;
  #connected = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #retryMs = 500;

  constructor(db: Db, connector: HostConnector, caches: ProcessCaches, log: (line: string) => void) {
    this.#db = db;
    this.#connector = connector;
    this.#caches = caches;
    this.#log = log;
    // The pool lost the listener's server (primary killed, demoted): the listener is on it too, or soon will be.
    this.#unwatch = connector.onFailure((host) => {
      if (this.#client && connector.hostOf(this.#client) === host) this.#lost(this.#client, 'database server lost');
    });
  }

  get live(): boolean {
    return this.#connected && performance.now() - this.#lastPing < STALE_MS;
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
    const client = await this.#connector.connect({
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 5000,
      query_timeout: STALE_MS,
    });
    client.on('notification', (n) => {
      if (n.channel === this.#pingChannel) {
        const nonce = n.payload ?? '';
        const sent = this.#pings.get(nonce);
        if (sent !== undefined && client === this.#client) this.#lastPing = Math.max(this.#lastPing, sent);
        this.#waiters.get(nonce)?.();
        return;
      }
      if (n.channel !== CHANGE_CHANNEL) return;
      const table = n.payload ?? '';
      if (this.#caches.holds(table)) this.#caches.changed(table);
      else this.#caches.dropAll(); // a name this version does not know: drop everything rather than guess
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
    this.#caches.dropAll();
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
    this.#schedulePing();
    await this.#send(this.#nextNonce(now));
  }

  /** A ping's nonce, remembered with when it was sent. */
  #nextNonce(now: number): string {
    const nonce = String(++this.#nonce);
    this.#pings.set(nonce, now);
    for (const [n, sent] of this.#pings) if (sent < now - LOST_MS) this.#pings.delete(n);
    return nonce;
  }

  /** Through the pool, as the trigger's notifications come from other sessions; heard back in the listener. */
  async #send(nonce: string): Promise<void> {
    await this.#db.raw('select pg_notify(?, ?)', [this.#pingChannel, nonce]).catch(() => {});
  }

  async caughtUp(): Promise<void> {
    if (!this.live) return;
    const nonce = this.#nextNonce(performance.now());
    let timer: NodeJS.Timeout | undefined;
    // Not heard within STALE_MS: no ping sent after this one can have been heard either, so the caches are bypassed.
    const heard = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STALE_MS);
      this.#waiters.set(nonce, resolve);
    });
    await this.#send(nonce);
    await heard;
    clearTimeout(timer);
    this.#waiters.delete(nonce);
  }

  #lost(client: pg.Client, why: string): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    this.#connected = false;
    this.#caches.dropAll();
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
    this.#closed = true;
    this.#connected = false;
    clearTimeout(this.#timer);
    this.#unwatch();
    for (const resolve of this.#waiters.values()) resolve();
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}

/**
 * Listens for changes on this database and drives `caches` with them: until it is live (and whenever it is not),
 * every read through `caches` goes to the table.
 */
export async function startChangeFeed(db: Db, caches: ProcessCaches, log: (line: string) => void = () => {}): Promise<ChangeFeed> {
  // The same hosts as the pool's connections: on the primary, wherever it is now.
  const feed = new Feed(db, connectorOf(db), caches, log);
  caches.drivenBy(feed);
  await feed.start();
  return feed;
}
