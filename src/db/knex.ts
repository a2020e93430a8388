// The one knex factory: every process (server, worker, CLI, tests) reaches PostgreSQL through it.
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { HostConnector } from './failover.ts';
import { parseDatabaseUrl, type DatabaseRole } from './hosts.ts';
import { countStatements } from './statement-count.ts';

// int8 (count(*), bigint ids) as JS numbers: our counts stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export type Db = Knex;

export type KnexOptions = {
  /** primary (default): IDMS_DATABASE_URL, writable host required when several are listed; read: IDMS_DATABASE_READ_URL. */
  role?: DatabaseRole;
  /** Where "now using host X" / "lost host X" lines go. */
  log?: (line: string) => void;
  /** false: no statement_timeout / query_timeout (migrations, which may legitimately run long). */
  boundedStatements?: boolean;
};

const connectors = new WeakMap<Db, { connector: HostConnector; url: string; options: KnexOptions }>();

export function createKnex(url: string, pool: { min?: number; max?: number } = {}, options: KnexOptions = {}): Db {
  const role = options.role ?? 'primary';
  const parsed = parseDatabaseUrl(url, role);
  const target = options.boundedStatements === false ? { ...parsed, statementTimeoutMs: 0 } : parsed;
  const connector = new HostConnector(target, role === 'primary' ? 'IDMS_DATABASE_URL' : 'IDMS_DATABASE_READ_URL', options.log);
  const db = knexFactory({
    client: 'pg',
    // knex parses this one (node-postgres cannot parse a host list); the connections themselves come from the connector.
    connection: target.hosts[0]!.url,
    pool: {
      min: pool.min ?? 0,
      max: pool.max ?? 10,
      // A connection opened before a failover signal is not handed out again: the pool drains (src/db/failover.ts).
      validate: (connection: pg.Client) => connector.isCurrent(connection),
    },
    // Fail fast when PostgreSQL is unreachable or the pool is saturated: the request answers 503 and the client
    // retries, instead of holding a socket and a queue slot for 10 s (knex's default is 60 s).
    acquireConnectionTimeout: 3000,
    // knex warns on every failed connection attempt (hundreds a second during an outage or a failover); the connector
    // logs the transitions (lost host X, now using host Y) once instead.
    log: {
      warn: (message: string) =>
        /^(Acquire connection error|Connection Error)/.test(String(message)) ? undefined : (options.log ?? console.warn)(String(message)),
    },
  });
  // knex's pg dialect opens each pooled connection here (one host, no role check); ours walks the host list.
  (db.client as { _acquireOnlyConnection: () => Promise<pg.Client> })._acquireOnlyConnection = async () => countStatements(await connector.connect());
  connectors.set(db, { connector, url, options });
  return db;
}

/** The connector behind a knex instance made by createKnex (the change feed's listener connects through it). */
export function connectorOf(db: Db): HostConnector {
  const entry = connectors.get(db);
  if (!entry) throw new Error('not a database handle from createKnex');
  return entry.connector;
}

/** Runs `fn` on a one-connection twin of `db` without statement bounds (migrations may legitimately run long). */
export async function withUnboundedStatements<T>(db: Db, fn: (db: Db) => Promise<T>): Promise<T> {
  const entry = connectors.get(db);
  if (!entry || entry.options.boundedStatements === false) return fn(db);
  const twin = createKnex(entry.url, { max: 1 }, { ...entry.options, boundedStatements: false });
  try {
    return await fn(twin);
  } finally {
    await twin.destroy();
  }
}
