// Opens connections to whichever listed PostgreSQL host currently fits the URL's target_session_attrs: the writable
// primary for IDMS_DATABASE_URL, a replica for IDMS_DATABASE_READ_URL (docs/ha.md).
//
// Hosts are tried in order, as libpq does; the one that fitted is remembered, so later connections go straight to it
// and a failed host is not waited for again at every connection. A connection error that says the server is gone or
// read-only (src/db/availability.ts signalsFailover) bumps a generation: every pooled connection opened before it is
// dropped at its next checkout (the pool is drained) and the next connection walks the list again, which finds the
// promoted standby as soon as it accepts writes. Until then every attempt fails fast with IDMS_NO_USABLE_HOST (503).
import pg from 'pg';
import type { DatabaseTarget, TargetSessionAttrs } from './hosts.ts';
import { signalsFailover } from './availability.ts';

export class NoUsableHostError extends Error {
  readonly code = 'IDMS_NO_USABLE_HOST';
}

/**
 * A COMMIT whose wait for the synchronous standby was cancelled (statement_timeout, a cancel request): PostgreSQL
 * reports success with only a WARNING, though the transaction is on the primary alone and a failover now would lose
 * it. It is not acknowledged: the caller gets this error (503) instead of the success.
 */
export class SyncReplicationCancelledError extends Error {
  readonly code = 'IDMS_SYNC_REP_CANCELLED';
  constructor() {
    super('committed on the primary only: the wait for the synchronous standby was cancelled (see docs/ha.md)');
  }
}

type Tagged = pg.Client & {
  __idmsHost?: number;
  __idmsGeneration?: number;
  __idmsSyncCancelled?: boolean;
  __knex__disposed?: unknown;
  connection?: { stream?: { destroy(): void } };
};
type SessionState = { recovery: boolean; read_only: boolean };

/** A host that just failed is tried after the others for this long (a silent host costs a whole connect_timeout). */
const RECENT_FAILURE_MS = 5000;
// One round trip on each new connection, only when the URL asks for a kind of session (libpq does the same).
const STATE_SQL = "select pg_is_in_recovery() as recovery, current_setting('transaction_read_only') = 'on' as read_only";

function fits(want: TargetSessionAttrs, s: SessionState): boolean {
  switch (want) {
    case 'read-write':
      return !s.recovery && !s.read_only;
    case 'primary':
      return !s.recovery;
    case 'read-only':
      return s.recovery || s.read_only;
    case 'standby':
      return s.recovery;
    default:
      return true;
  }
}

export class HostConnector {
  readonly target: DatabaseTarget;
  /** Bumped when a connection reports that its server failed; connections of older generations are not reused. */
  generation = 0;
  readonly #name: string;
  readonly #log: (line: string) => void;
  #preferred: number | undefined;
  #last: number | undefined;
  readonly #failedAt = new Map<number, number>();
  readonly #onFailure = new Set<(host: number) => void>();

  constructor(target: DatabaseTarget, name: string, log: (line: string) => void = () => {}) {
    this.target = target;
    this.#name = name;
    this.#log = log;
  }

  /** Called with the failed host's index whenever a connection reports a failover signal (the change feed listens). */
  onFailure(fn: (host: number) => void): () => void {
    this.#onFailure.add(fn);
    return () => this.#onFailure.delete(fn);
  }

  /** True while a pooled connection may be handed out again. */
  isCurrent(client: pg.Client): boolean {
    const c = client as Tagged;
    return c.__idmsGeneration === this.generation && !c.__knex__disposed;
  }

  hostOf(client: pg.Client): number | undefined {
    return (client as Tagged).__idmsHost;
  }

  /** A connected client on the first listed host that fits, or NoUsableHostError naming why each host did not. */
  async connect(extra: pg.ClientConfig = {}): Promise<pg.Client> {
    const { hosts, attrs } = this.target;
    const passes: TargetSessionAttrs[] = attrs === 'prefer-standby' ? ['standby', 'any'] : [attrs];
    const why: string[] = [];
    let driverError: unknown;
    for (const want of passes) {
      for (const i of this.#order()) {
        const client = new pg.Client({ ...this.#settings(i), ...extra }) as Tagged;
        // Until the caller's own listeners are attached, a broken socket must not become an unhandled 'error'.
        client.on('error', (err) => this.#observe(client, err));
        client.on('end', () => (client.__knex__disposed ??= 'Connection ended unexpectedly'));
        // A host that cannot be reached or asked is marked failed (tried last next time) and named in the refusal.
        const unreachable = (err: unknown) => {
          driverError = err;
          this.#failed(i);
          why.push(`${hosts[i]!.label}: ${describe(err)}`);
          client.end().catch(() => {});
        };
        try {
          await client.connect();
        } catch (err) {
          unreachable(err);
          continue;
        }
        if (want !== 'any') {
          let state: SessionState;
          try {
            state = (await client.query<SessionState>(STATE_SQL)).rows[0]!;
          } catch (err) {
            unreachable(err);
            continue;
          }
          if (!fits(want, state)) {
            if (this.#preferred === i) this.#preferred = undefined;
            why.push(`${hosts[i]!.label}: ${state.recovery ? 'a standby (in recovery)' : 'read-only'}`);
            client.end().catch(() => {});
            continue;
          }
        }
        this.#chose(i);
        client.__idmsHost = i;
        client.__idmsGeneration = this.generation;
        this.#watch(client);
        return client;
      }
    }
    // One host and a driver error: the driver's own error, as before multi-host support (codes the CLI explains).
    if (hosts.length === 1 && passes.length === 1 && why.length === 1 && driverError !== undefined) throw driverError;
    const wanted = attrs === 'read-write' || attrs === 'primary' ? 'writable' : attrs === 'any' ? 'reachable' : attrs;
    throw new NoUsableHostError(`no ${wanted} PostgreSQL host in ${this.#name}: ${why.join('; ')}`);
  }

  #settings(i: number): pg.ClientConfig {
    const { connectTimeoutMs, statementTimeoutMs } = this.target;
    return {
      connectionString: this.target.hosts[i]!.url,
      keepAlive: true,
      ...(connectTimeoutMs ? { connectionTimeoutMillis: connectTimeoutMs } : {}),
      // Bounded waits (issue 17): the server cancels a statement past statement_timeout; if its answer never comes
      // (a host gone silent, no RST), the driver gives up a little later and the connection is dropped.
      ...(statementTimeoutMs ? { statement_timeout: statementTimeoutMs, query_timeout: statementTimeoutMs + 2000 } : {}),
    };
  }

  #order(): number[] {
    const all = this.target.hosts.map((_, i) => i);
    const preferred = this.#preferred;
    if (preferred !== undefined) return [preferred, ...all.filter((i) => i !== preferred)];
    const now = performance.now();
    const recent = (i: number) => now - (this.#failedAt.get(i) ?? -Infinity) < RECENT_FAILURE_MS;
    return [...all.filter((i) => !recent(i)), ...all.filter(recent)];
  }

  #failed(i: number): void {
    this.#failedAt.set(i, performance.now());
    if (this.#preferred === i) this.#preferred = undefined;
  }

  #chose(i: number): void {
    this.#preferred = i;
    this.#failedAt.delete(i);
    if (this.#last !== undefined && this.#last !== i) {
      this.#log(`${this.#name}: now using ${this.target.hosts[i]!.label} (was ${this.target.hosts[this.#last]!.label})`);
    }
    this.#last = i;
  }

  /** Sees every failed query of the connection (knex's, prepared statements', the listener's). */
  #watch(client: Tagged): void {
    const query = client.query as (...args: unknown[]) => unknown;
    const observe = (err: unknown) => this.#observe(client, err);
    // PostgreSQL's WARNING (SQLSTATE 01000) "canceling wait for synchronous replication", sent before the COMMIT's
    // completion; one statement at a time runs on a connection, so it belongs to the statement now running.
    client.on('notice', (notice) => {
      if (/canceling wait for synchronous replication/i.test(notice.message ?? '')) client.__idmsSyncCancelled = true;
    });
    const unacknowledged = () => {
      if (!client.__idmsSyncCancelled) return undefined;
      client.__idmsSyncCancelled = false;
      return new SyncReplicationCancelledError();
    };
    client.query = function (this: pg.Client, ...args: unknown[]) {
      const last = args.length - 1;
      const callback = args[last];
      if (typeof callback === 'function') {
        args[last] = (err: unknown, res: unknown) => {
          if (err) observe(err);
          const cancelled = unacknowledged();
          (callback as (err: unknown, res: unknown) => void)(err ?? cancelled ?? null, cancelled ? undefined : res);
        };
        return query.apply(this, args);
      }
      const result = query.apply(this, args);
      if (!result || typeof (result as Promise<unknown>).then !== 'function') return result;
      return (result as Promise<unknown>).then(
        (res) => {
          const cancelled = unacknowledged();
          if (cancelled) throw cancelled;
          return res;
        },
        (err: unknown) => {
          observe(err);
          unacknowledged();
          throw err;
        },
      );
    } as typeof client.query;
  }

  #observe(client: Tagged, err: unknown): void {
    if (!signalsFailover(err)) return;
    client.__knex__disposed ??= err;
    // A timed-out query still occupies the connection: cut it now rather than wait for a socket that may never answer.
    if (err instanceof Error && /Query read timeout/.test(err.message)) client.connection?.stream?.destroy();
    const host = client.__idmsHost;
    if (host === undefined || client.__idmsGeneration !== this.generation) return;
    this.generation++;
    this.#failed(host);
    this.#log(`${this.#name}: lost ${this.target.hosts[host]!.label} (${describe(err)}); reconnecting`);
    for (const fn of this.#onFailure) fn(host);
  }
}

function describe(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' && e.message ? e.message.split('\n')[0]! : String(err);
  return typeof e?.code === 'string' && /^[A-Z]/.test(e.code) && !message.includes(e.code) ? `${e.code} ${message}` : message;
}
