// What a request costs besides time: statements sent to PostgreSQL and CPU per process group (seal-idms' processes,
// PostgreSQL, the load generator), sampled before and after each measured run.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { Db } from '../src/db/knex.ts';
import { processTree } from './servers.ts';

const TICK_MS = 1000 / Number(safe(() => execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(), '100'));

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

/** utime + stime of each process (all its threads), in ms, from /proc/<pid>/stat. */
export function cpuMsOf(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const stat = safe(() => fs.readFileSync(`/proc/${pid}/stat`, 'utf8'), '');
    if (!stat) continue;
    // Fields after the command (which may hold spaces) in parentheses: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(pid, (Number(fields[11]) + Number(fields[12])) * TICK_MS);
  }
  return out;
}

/** Where a server's CPU goes: its JavaScript threads, libuv's pool (password hashing, WebCrypto), V8's helpers (GC, compiler), and the kernel. */
export type ThreadSplit = { main: number; pool: number; v8: number; other: number; sys: number };
type ThreadKind = Exclude<keyof ThreadSplit, 'sys'>;

/** utime and stime of each thread of `pids`, in ms, keyed by thread id, with the kind of thread (its name in /proc). */
export function threadCpuOf(pids: number[]): Map<number, { kind: ThreadKind; user: number; sys: number }> {
  const out = new Map<number, { kind: ThreadKind; user: number; sys: number }>();
  for (const pid of pids) {
    for (const tid of safe(() => fs.readdirSync(`/proc/${pid}/task`), [] as string[])) {
      const stat = safe(() => fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'), '');
      if (!stat) continue;
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const kind: ThreadKind = Number(tid) === pid ? 'main' : name.startsWith('libuv-worker') ? 'pool' : name.startsWith('V8') ? 'v8' : 'other';
      out.set(Number(tid), { kind, user: Number(fields[11]) * TICK_MS, sys: Number(fields[12]) * TICK_MS });
    }
  }
  return out;
}

export function threadDelta(before: ReturnType<typeof threadCpuOf>, after: ReturnType<typeof threadCpuOf>): ThreadSplit {
  const split: ThreadSplit = { main: 0, pool: 0, v8: 0, other: 0, sys: 0 };
  for (const [tid, t] of after) {
    const b = before.get(tid);
    const user = t.user - (b?.user ?? 0);
    const sys = t.sys - (b?.sys ?? 0);
    split[t.kind] += user + sys;
    split.sys += sys;
  }
  return split;
}

/** CPU used between two samples: processes in both count their difference, new ones all they used. */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [pid, t] of after) ms += t - (before.get(pid) ?? 0);
  return ms;
}

/** Where a target's processes are. `pg`: PostgreSQL processes doing its work (undefined: not on this machine or not ours to see). */
export type CostProbe = {
  serverPids(): number[];
  pgPids(): Promise<number[]>;
  /** Statements counted by pg_stat_statements in the target's database, or undefined without it. */
  pgssStatements(): Promise<number | undefined>;
  /** Statements the server's pools sent (idms_db_statements_total), or undefined. */
  serverStatements(): Promise<number | undefined>;
};

export type CostSample = {
  server: Map<number, number>;
  threads: ReturnType<typeof threadCpuOf>;
  pg: Map<number, number>;
  generatorMs: number;
  pgss?: number;
  counted?: number;
};

export async function sample(probe: CostProbe): Promise<CostSample> {
  const [pgPids, pgss, counted] = await Promise.all([probe.pgPids(), probe.pgssStatements(), probe.serverStatements()]);
  const u = process.cpuUsage();
  const serverPids = probe.serverPids();
  return { server: cpuMsOf(serverPids), threads: threadCpuOf(serverPids), pg: cpuMsOf(pgPids), generatorMs: (u.user + u.system) / 1000, pgss, counted };
}

/** Totals of one measured interval. */
export type Cost = { serverMs: number; split: ThreadSplit; pgMs: number; generatorMs: number; pgss?: number; counted?: number };

export function costBetween(a: CostSample, b: CostSample): Cost {
  return {
    serverMs: cpuDelta(a.server, b.server),
    split: threadDelta(a.threads, b.threads),
    pgMs: cpuDelta(a.pg, b.pg),
    generatorMs: b.generatorMs - a.generatorMs,
    pgss: a.pgss !== undefined && b.pgss !== undefined ? b.pgss - a.pgss : undefined,
    counted: a.counted !== undefined && b.counted !== undefined ? b.counted - a.counted : undefined,
  };
}

export function addCost(a: Cost | undefined, b: Cost): Cost {
  if (!a) return b;
  const add = (x?: number, y?: number) => (x === undefined || y === undefined ? undefined : x + y);
  return {
    serverMs: a.serverMs + b.serverMs,
    split: {
      main: a.split.main + b.split.main,
      pool: a.split.pool + b.split.pool,
      v8: a.split.v8 + b.split.v8,
      other: a.split.other + b.split.other,
      sys: a.split.sys + b.split.sys,
    },
    pgMs: a.pgMs + b.pgMs,
    generatorMs: a.generatorMs + b.generatorMs,
    pgss: add(a.pgss, b.pgss),
    counted: add(a.counted, b.counted),
  };
}

/** The node processes of a server (its own and its cluster workers), not the PostgreSQL it may have started. */
export function nodePids(root: number): number[] {
  return processTree(root).filter((pid) => !safe(() => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), '').includes('postgres'));
}

/** The postmaster and its children, from the data directory's postmaster.pid (the embedded PostgreSQL). */
export function postmasterTree(pgDataDir: string): number[] {
  const pid = Number(safe(() => fs.readFileSync(`${pgDataDir}/postmaster.pid`, 'utf8').split('\n')[0], ''));
  return pid > 0 ? processTree(pid) : [];
}

/** The backends connected to `db`'s database (for a shared server: its other databases' work is not ours). */
export async function backendsOf(db: Db): Promise<number[]> {
  const { rows } = await db.raw('select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()');
  return (rows as { pid: number }[]).map((r) => r.pid);
}

/**
 * pg_stat_statements in `db`'s database, if the server preloads it (shared_preload_libraries); creates the extension.
 * Returns the counter, or undefined (the bench then uses the server's own counter).
 */
export async function pgssCounter(db: Db): Promise<(() => Promise<number>) | undefined> {
  const preload = String((await db.raw('show shared_preload_libraries')).rows[0].shared_preload_libraries);
  if (
    !preload
      .split(',')
      .map((s) => s.trim())
      .includes('pg_stat_statements')
  )
    return undefined;
  try {
    await db.raw('create extension if not exists pg_stat_statements');
  } catch {
    return undefined;
  }
  return async () => {
    const { rows } = await db.raw(
      `select coalesce(sum(calls), 0)::bigint as n from pg_stat_statements
       where dbid = (select oid from pg_database where datname = current_database()) and query not like '%pg_stat%'`,
    );
    return Number(rows[0].n);
  };
}

/** Calls per statement text in `db`'s database (pg_stat_statements), for the per-flow statement lists. */
export async function pgssByStatement(db: Db): Promise<Map<string, number>> {
  const { rows } = await db.raw(
    `select query, sum(calls)::bigint as n from pg_stat_statements
     where dbid = (select oid from pg_database where datname = current_database()) and query not like '%pg_stat%' group by query`,
  );
  return new Map((rows as { query: string; n: number }[]).map((r) => [r.query, Number(r.n)]));
}

/** What ran between two pgssByStatement snapshots, most frequent first. */
export function statementDelta(a: Map<string, number>, b: Map<string, number>, into = new Map<string, number>()): Map<string, number> {
  for (const [q, n] of b) {
    const d = n - (a.get(q) ?? 0);
    if (d > 0) into.set(q, (into.get(q) ?? 0) + d);
  }
  return into;
}

/** idms_db_statements_total from the server's metrics listener (summed over cluster workers by the primary). */
export async function scrapeStatements(metricsOrigin: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${metricsOrigin}/metrics`)).text();
    const m = /^idms_db_statements_total(?:\{[^}]*\})? ([0-9.e+]+)$/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
