// CLI: serve — runs the S-IdMS until SIGINT/SIGTERM (also what `npm start` runs).
import { loadConfig } from '../config/env.ts';
import { loadSecrets } from '../config/secret.ts';
import { openDatabase } from '../db/database.ts';
import { createIdms, createListener, listen } from '../server.ts';
import type { CliIo } from './context.ts';

export async function serveCommand(_args: string[], io: CliIo): Promise<void> {
  const log = (line: string) => io.stderr.write(line + '\n');
  const config = loadConfig(io.env);
  const secrets = await loadSecrets(config);
  const database = await openDatabase(config, { log });
  const idms = await createIdms({ config, db: database.db, secrets, log });
  const server = createListener(config, idms.app);
  const address = await listen(server, config.port, config.host).catch(async (err) => {
    await database.close();
    throw err;
  });
  const where = `${config.tls ? 'https' : 'http'}://${address.address}:${address.port}`;
  log(`seal-idms listening on ${where} (issuer ${config.issuer}; database: ${database.embedded ? `embedded PostgreSQL in ${config.dataDir}/pg` : 'IDMS_DATABASE_URL'})`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: finishing in-flight requests and shutting down`);
      // Stop accepting, let in-flight requests finish, then release the pool and the embedded database.
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 10_000).unref();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await idms.close();
  await database.close();
}
