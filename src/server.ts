// Composition root, wiring only: configuration and database in, then the provider, the routes in their order, and
// the background jobs; the listener is src/http/listener.ts. Rules live in the modules wired here (docs/architecture.md).
import Koa from 'koa';
import type Provider from 'oidc-provider';
import type { Config } from './config/env.ts';
import type { Secrets } from './config/secret.ts';
import { createCaches, startChangeFeed } from './db/change-feed.ts';
import type { Db } from './db/knex.ts';
import { sweepSeenSecurityTokens } from './federation/replay.ts';
import type { ApiDeps, RestApi } from './http/api.ts';
import { pageErrors } from './http/errors.ts';
import { strictTransportSecurity } from './http/headers.ts';
import { protocolInputGuard } from './http/protocol-input.ts';
import { onlyPaths } from './http/only-paths.ts';
import { systemRoutes } from './http/system-routes.ts';
import { interactionRoutes } from './interactions/routes.ts';
import { sweepRevokedAccessTokens } from './oidc/access-tokens.ts';
import { convertLegacyPayloads, sweepExpiredPayloads } from './oidc/adapter.ts';
import { atRestKeys } from './oidc/at-rest.ts';
import { idTokenHintTyping } from './oidc/id-token-hint.ts';
import { jwtAccessTokenEndpoints } from './oidc/jwt-introspection.ts';
import { keyRetentionSeconds } from './oidc/keys.ts';
import { providerEndpoints, startLiveProvider } from './oidc/live-provider.ts';
import { databaseOutage } from './oidc/outage.ts';
import { createProvider, type ProviderExtension } from './oidc/provider.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { metrics, trackPool } from './observability/metrics.ts';
import { observeProvider } from './observability/oidc-events.ts';
import { requestLog } from './observability/request-log.ts';
import { provisioningApi } from './provisioning/routes.ts';
import { ssIppApi } from './provisioning/ss-ipp-routes.ts';
import { DEFAULT_THROTTLE, sweepLoginAttempts, type ThrottlePolicy } from './users/throttle.ts';

export type IdmsOptions = {
  config: Config;
  db: Db;
  secrets: Secrets;
  /** How often each instance checks for rotated signing keys. */
  keyRefreshMs?: number;
  throttle?: ThrottlePolicy;
  log?: (line: string) => void;
  /** Structured logs (request lines, provider errors); default: JSON to stderr at IDMS_LOG_LEVEL. `log` lines go here too at warn. */
  logger?: Logger;
};

export type Idms = {
  app: Koa;
  provider(): Provider;
  /** Reloads signing keys now if they changed in the database (rotation by the CLI or another instance). */
  refreshKeys(): Promise<void>;
  /** Resolves once this instance's caches have heard of every change committed before the call (src/db/change-feed.ts). */
  changesHeard(): Promise<void>;
  close(): Promise<void>;
};

// Protocol additions on top of oidc-provider (its grants come from src/oidc/grants/index.ts through createProvider).
// databaseOutage comes first: it is the outermost middleware, so it sees every other extension's errors.
const extensions: ProviderExtension[] = [databaseOutage, idTokenHintTyping, jwtAccessTokenEndpoints];
// REST APIs mounted before the provider.
const apis: RestApi[] = [ssIppApi, provisioningApi];

export async function createIdms(options: IdmsOptions): Promise<Idms> {
  const { config, db, secrets } = options;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const log = options.log ?? ((line: string) => logger.warn(line));

  // Rows from before bearer values and client secrets were stored hashed (needs IDMS_SECRET, so not a migration).
  await convertLegacyPayloads(db, atRestKeys(secrets));
  // This process's caches of clients, resource servers, partners, revocations and VAL servers, passed to whatever reads
  // through them (the provider, the REST APIs); the change feed drops their entries on any change (docs/scaling.md).
  const caches = createCaches();
  const live = await startLiveProvider({
    db,
    secrets,
    issuer: config.issuer,
    retainSeconds: keyRetentionSeconds(config),
    refreshMs: options.keyRefreshMs ?? 5000,
    log,
    build: (signingKeys) => {
      const provider = createProvider({ config, db, caches, secrets, signingKeys }, extensions);
      observeProvider(provider, logger);
      return provider;
    },
  });

  const sweeps = setInterval(() => {
    sweepExpiredPayloads(db).catch((err) => log(`sweep of expired OIDC records failed: ${String(err)}`));
    sweepLoginAttempts(db, options.throttle ?? DEFAULT_THROTTLE).catch(() => {});
    sweepRevokedAccessTokens(db).catch(() => {});
    sweepSeenSecurityTokens(db).catch(() => {});
  }, 60_000);
  sweeps.unref();
  const untrackPool = trackPool(db);
  const changeFeed = await startChangeFeed(db, caches, log);

  const app = new Koa();
  app.proxy = config.trustProxy;
  // One trusted hop: the client address is the one our proxy appended, not a leftmost X-Forwarded-For entry the client wrote.
  app.maxIpsCount = 1;
  // oidc-provider's middleware runs in this app (src/oidc/live-provider.ts): its signed cookies use this app's keys.
  app.keys = secrets.cookieKeys;
  if (config.tls || config.issuer.startsWith('https:')) app.use(strictTransportSecurity);
  app.use(requestLog(logger, metrics.httpRequest));
  app.use(pageErrors(log, config));
  // Each router sees only its own paths (src/http/only-paths.ts): the OIDC endpoints skip their route matching.
  app.use(onlyPaths(/^\/(?:healthz|readyz|static)(?:\/|$)/i, systemRoutes(db, live.keysLoaded).routes()));
  app.use(
    onlyPaths(
      /^\/interaction\//i,
      interactionRoutes({
        db,
        csrfKey: secrets.csrfKey,
        loginIdKey: secrets.loginIdKey,
        provider: () => live.current().provider,
        throttle: options.throttle,
        site: config,
      }).routes(),
    ),
  );
  // REST APIs next to the OIDC endpoints; each verifies bearer tokens with the current signing keys.
  const apiDeps: ApiDeps = { config, db, caches, verifyAccessToken: (token) => live.current().verifyAccessToken(token), log };
  for (const api of apis) app.use(api(apiDeps));
  // Issue 10 item 4: no protocol parameter that could not be stored or logged reaches oidc-provider.
  app.use(protocolInputGuard(config));
  app.use(providerEndpoints(live));

  return {
    app,
    provider: () => live.current().provider,
    refreshKeys: live.refreshKeys,
    changesHeard: () => changeFeed.caughtUp(),
    async close() {
      clearInterval(sweeps);
      untrackPool();
      await changeFeed.close();
      await live.close();
    },
  };
}
