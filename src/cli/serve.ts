// CLI: serve — runs the S-IdMS until SIGINT/SIGTERM (also what `npm start` runs), in one process or as a node:cluster.
import cluster from 'node:cluster';
import pino from 'pino';
import { loadConfig, type Config } from '../config/env.ts';
import { loadSecrets } from '../config/secret.ts';
import { runPrimary } from '../cluster.ts';
import { openDatabase } from '../db/database.ts';
import { createListener, listen } from '../http/listener.ts';
import { createIdms } from '../server.ts';
import { shareHashingAmong } from '../users/passwords.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { enableProcessMetrics, startMetricsListener } from '../observability/metrics.ts';
import type { CliIo } from './context.ts';

export async function serveCommand(_args: string[], io: CliIo): Promise<void> {
  const config = loadConfig(io.env);
  // JSON lines for log collectors; short text lines when a person watches the terminal (IDMS_LOG_FORMAT overrides).
  const format = config.logFormat ?? ((io.stderr as { isTTY?: boolean }).isTTY ? 'pretty' : 'json');
  // stderr writes are synchronous in Node (files and pipes): one blocking syscall per access-log line. The process's
  // own stderr is written asynchronously instead, in batches of at least 4 KiB (about 25 access lines) or whatever
  // is there after at most a second (issue 16: the log may be batched); the access log flushes at once after a
  // denied or failed request (src/observability/request-log.ts), and pino flushes what is left when the process exits.
  const destination =
    io.stderr === process.stderr && format === 'json'
      ? (pino.destination({ dest: 2, sync: false, minLength: 4096, periodicFlush: 1000 }) as unknown as NodeJS.WritableStream)
      : io.stderr;
  const logger = createLogger({ level: config.logLevel, format, destination });
  const log = (line: string) => logger.info(line);
  if (cluster.isWorker) {
    enableProcessMetrics(); // scraped through the primary
    shareHashingAmong(config.workers);
    await serveInstance(config, log, { worker: true, logger });
    // The IPC channel to the primary would keep this process alive after the drain.
    if (process.connected) process.disconnect();
    return;
  }
  // Prometheus on its own listener, never the public one; a cluster primary answers with its workers' sums.
  const metrics = config.metrics && (await startMetricsListener({ ...config.metrics, aggregateWorkers: config.workers > 1 }));
  if (metrics) log(`metrics on http://${config.metrics!.host}:${metrics.address.port}/metrics`);
  try {
    if (config.workers > 1) await runPrimary(config, { log });
    else await serveInstance(config, log, { worker: false, logger });
  } finally {
    await metrics?.close();
  }
}

/** One serving process: the whole server when IDMS_WORKERS=1, else one cluster worker. */
async function serveInstance(config: Config, log: (line: string) => void, { worker, logger }: { worker: boolean; logger: Logger }): Promise<void> {
  const secrets = await loadSecrets(config);
  // A worker attaches to the database its primary already migrated (and whose embedded PostgreSQL it owns).
  const database = await openDatabase(config, { log, migrate: !worker, poolMax: config.dbPoolMax, handlesSignals: true });
  const idms = await createIdms({ config, db: database.db, secrets, logger });
  const server = createListener(config, idms.app);
  const address = await listen(server, config.port, config.host).catch(async (err) => {
    await idms.close();
    await database.close();
    throw err;
  });
  if (!worker) {
    const where = `${config.tls ? 'https' : 'http'}://${address.address}:${address.port}`;
    log(
      `seal-idms listening on ${where} (issuer ${config.issuer}; database: ${database.embedded ? `embedded PostgreSQL in ${config.dataDir}/pg` : 'IDMS_DATABASE_URL'})`,
    );
  }

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (reason: string) => {
      if (stopping) return;
      stopping = true;
      if (!worker) log(`${reason}: finishing in-flight requests and shutting down`);
      // Stop accepting, let in-flight requests finish, then release the pool and the embedded database.
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 10_000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    if (worker) {
      // Ctrl-C reaches the whole process group: the primary coordinates the drain (it sends SIGTERM).
      process.on('SIGINT', () => {});
      // The primary is gone (killed): no new connections can arrive, so finish and leave.
      process.once('disconnect', () => stop('primary gone'));
    } else {
      process.once('SIGINT', () => stop('SIGINT'));
    }
  });
  await idms.close();
  await database.close();
}
