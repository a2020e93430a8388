// Starts a real S-IdMS (HTTP listener on a free loopback port) on a test database, in-process.
import http from 'node:http';
import { loadConfig, type Config } from '../../src/config/env.ts';
import { deriveSecrets } from '../../src/config/secret.ts';
import { listen } from '../../src/http/listener.ts';
import { createIdms, type Idms } from '../../src/server.ts';
import type { ThrottlePolicy } from '../../src/users/throttle.ts';
import { silentLogger, type Logger } from '../../src/observability/logger.ts';
import type { TestDatabase } from './db.ts';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';

export type TestServer = {
  issuer: string;
  config: Config;
  idms: Idms;
  /** The environment a CLI invocation needs to talk to the same database with the same secret. */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
};

// The servers this test process runs: a CLI command (a process of its own in production) changes what they cache, and
// they hear of it through PostgreSQL NOTIFY only; the CLI helpers wait for that before the test goes on.
const running = new Set<Idms>();

/** Resolves once every running test server has heard of every change committed so far (src/db/change-feed.ts caughtUp). */
export async function serversHeardChanges(): Promise<void> {
  await Promise.all([...running].map((idms) => idms.changesHeard()));
}

export async function startTestServer(
  database: TestDatabase,
  options: { env?: Record<string, string>; throttle?: ThrottlePolicy; keyRefreshMs?: number; logger?: Logger } = {},
): Promise<TestServer> {
  const server = http.createServer();
  const { port } = await listen(server, 0, '127.0.0.1');
  const issuer = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    IDMS_ISSUER: issuer,
    IDMS_DATABASE_URL: database.url,
    IDMS_SECRET: TEST_SECRET,
    ...options.env,
  };
  const config = loadConfig(env);
  const idms = await createIdms({
    config,
    db: database.db,
    secrets: deriveSecrets(TEST_SECRET),
    throttle: options.throttle,
    keyRefreshMs: options.keyRefreshMs,
    // With a logger (tests of logging), `log` lines go to it too (createIdms' default).
    log: options.logger ? undefined : () => {},
    logger: options.logger ?? silentLogger(),
  });
  server.on('request', idms.app.callback());
  running.add(idms);
  return {
    issuer,
    config,
    idms,
    env,
    async close() {
      running.delete(idms);
      await idms.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
