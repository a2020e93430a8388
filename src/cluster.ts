// The node:cluster primary (IDMS_WORKERS > 1): prepares the database once, forks workers that share the port, keeps them running.
import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config/env.ts';
import { loadSecrets } from './config/secret.ts';
import { openDatabase } from './db/database.ts';
import { ensureSigningKeys } from './oidc/keys.ts';

export type ClusterOptions = {
  log: (line: string) => void;
  /** How long workers get to finish in-flight requests before they are killed. */
  drainMs?: number;
};

// Crash-loop guard: a worker that dies before it ever listened is a start-up failure (port taken, bad
// database URL...). Restarting it forever would hide the cause; after this many in a row the cluster stops.
const MAX_STARTUP_FAILURES = 3;
const MAX_RESTART_DELAY_MS = 10_000;

// V8 otherwise lets an idle-looking heap grow to several times its live size (measured: ~35 MB live, 200+ MB
// heap, 340 MB RSS per worker under load); these keep a worker near 180 MB RSS at the same throughput
// (docs/scaling.md). The old-space cap is far above the live set; an operator's own flags win.
const WORKER_HEAP_FLAGS = ['--max-semi-space-size=8', '--max-old-space-size=192'];

function workerExecArgv(): string[] {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const flags = WORKER_HEAP_FLAGS.filter((f) => !given.some((g) => g.startsWith(f.slice(0, f.indexOf('=')))));
  return [...process.execArgv, ...flags];
}

/**
 * Runs the primary until SIGINT/SIGTERM: migrates the database and makes sure signing keys exist (so N
 * workers do not race to do it), forks config.workers workers (each runs `serve` and attaches to the same
 * database without migrating), restarts a worker that exits while the cluster is not stopping, and on a
 * signal drains every worker before it releases the database (stopping the embedded PostgreSQL it started).
 */
export async function runPrimary(config: Config, options: ClusterOptions): Promise<void> {
  const { log } = options;
  const secrets = await loadSecrets(config);
  // The primary serves nothing: a small pool for set-up, held so its embedded PostgreSQL stays owned here.
  const database = await openDatabase(config, { log, poolMax: 1, handlesSignals: true });
  try {
    await ensureSigningKeys(database.db, secrets.keyEncryptionKey);
  } catch (err) {
    await database.close();
    throw err;
  }

  const listening = new Set<number>();
  let stopping = false;
  let startupFailures = 0;
  const recentCrashes: number[] = [];
  let failure: Error | undefined;
  let announced = false;

  const fork = () => {
    const worker = cluster.fork();
    worker.once('listening', (address) => {
      listening.add(worker.id);
      startupFailures = 0;
      if (!announced && listening.size === config.workers) {
        announced = true;
        const where = `${config.tls ? 'https' : 'http'}://${address.address ?? config.host}:${address.port}`;
        log(
          `seal-idms listening on ${where} with ${config.workers} workers (issuer ${config.issuer}; database: ${database.embedded ? `embedded PostgreSQL in ${config.dataDir}/pg` : 'IDMS_DATABASE_URL'})`,
        );
      }
    });
    return worker;
  };

  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));

  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    log(`${reason}: draining ${Object.keys(cluster.workers ?? {}).length} workers and shutting down`);
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    if (workers.length === 0) done();
    for (const w of workers) w.process.kill('SIGTERM');
    // Workers close their listeners and wait for in-flight requests; past the deadline they are killed.
    setTimeout(() => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    }, options.drainMs ?? 15_000).unref();
  };

  cluster.on('exit', (worker, code, signal) => {
    const wasListening = listening.delete(worker.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) done();
      return;
    }
    log(`worker ${worker.process.pid} exited (${signal ?? `code ${code}`}); starting a replacement`);
    if (!wasListening && ++startupFailures >= MAX_STARTUP_FAILURES) {
      failure = new Error(`workers keep failing at start-up (${startupFailures} in a row); see their messages above`);
      stop('start-up failure');
      return;
    }
    const now = Date.now();
    recentCrashes.push(now);
    while (recentCrashes[0]! < now - 60_000) recentCrashes.shift();
    // A short pause even for the first restart: a signal meant for the whole process group reaches a worker
    // and this primary together, and the primary's own handler must win before a replacement is forked.
    const delay = Math.min(100 * 2 ** (recentCrashes.length - 1), MAX_RESTART_DELAY_MS);
    setTimeout(() => {
      if (!stopping) fork();
    }, delay);
  });

  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  cluster.setupPrimary({ execArgv: workerExecArgv() });
  for (let i = 0; i < config.workers; i++) fork();

  await finished;
  await database.close();
  if (failure) throw failure;
}
