// Composition: builds the Koa application (OIDC provider, login, health, static theme) and its listener.
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { Config } from './config/env.ts';
import type { Secrets } from './config/secret.ts';
import type { Db } from './db/knex.ts';
import { migrationsCurrent } from './db/migrate.ts';
import { BodyTooLargeError } from './http/body.ts';
import { setPageSecurityHeaders } from './http/headers.ts';
import { protocolInputGuard } from './http/protocol-input.ts';
import { interactionRoutes } from './interactions/routes.ts';
import { readAsset, renderPage } from './interactions/views.ts';
import { convertLegacyPayloads, sweepExpiredPayloads } from './oidc/adapter.ts';
import { atRestKeys } from './oidc/at-rest.ts';
import { ensureSigningKeys, loadSigningKeys, signingKeysFingerprint, type SigningKeySet } from './oidc/keys.ts';
import { createProvider, type ProviderExtension } from './oidc/provider.ts';
import { jwtAccessTokenEndpoints } from './oidc/jwt-introspection.ts';
import { databaseOutage } from './oidc/outage.ts';
import { idTokenHintTyping } from './oidc/id-token-hint.ts';
import { isDatabaseUnavailable } from './db/availability.ts';
import { accessTokenVerifier, sweepRevokedAccessTokens, type AccessTokenVerifier } from './oidc/access-tokens.ts';
import { DEFAULT_THROTTLE, sweepLoginAttempts, type ThrottlePolicy } from './users/throttle.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { metrics, trackPool } from './observability/metrics.ts';
import { observeProvider } from './observability/oidc-events.ts';
import { requestLog } from './observability/request-log.ts';
import { provisioningApi } from './provisioning/routes.ts';
import { ssIppApi } from './provisioning/ss-ipp-routes.ts';
import { tokenExchangeGrant } from './oidc/grants/token-exchange.ts';
import { jwtBearerGrant } from './oidc/grants/jwt-bearer.ts';
import { sweepSeenSecurityTokens } from './federation/replay.ts';
import { startChangeFeed } from './db/change-feed.ts';

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
  close(): Promise<void>;
};

/** What a REST API module (e.g. provisioning) receives from the composition. */
export type ApiDeps = {
  config: Config;
  db: Db;
  verifyAccessToken: AccessTokenVerifier;
  log: (line: string) => void;
};

// Protocol additions on top of oidc-provider (grants, JWT access token introspection).
// databaseOutage comes first: it is the outermost middleware, so it sees every other extension's errors.
export const extensions: ProviderExtension[] = [databaseOutage, idTokenHintTyping, tokenExchangeGrant, jwtBearerGrant, jwtAccessTokenEndpoints];
// REST APIs mounted before the provider.
const apis: ((deps: ApiDeps) => Koa.Middleware)[] = [ssIppApi, provisioningApi];

/** Longest lifetime of anything signed with a key: how long a retired key stays published. */
export function keyRetentionSeconds(config: Config): number {
  const clockSkew = 60;
  return Math.max(config.ttl.accessToken, config.ttl.idToken, config.ttl.securityToken) + clockSkew;
}

export async function createIdms(options: IdmsOptions): Promise<Idms> {
  const { config, db, secrets } = options;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const log = options.log ?? ((line: string) => logger.warn(line));
  const retain = keyRetentionSeconds(config);

  await ensureSigningKeys(db, secrets.keyEncryptionKey);
  // Rows from before bearer values and client secrets were stored hashed (needs IDMS_SECRET, so not a migration).
  await convertLegacyPayloads(db, atRestKeys(secrets));
  let keySet: SigningKeySet = await loadSigningKeys(db, secrets.keyEncryptionKey, retain);
  const build = () => {
    const provider = createProvider({ config, db, secrets, signingKeys: keySet.keys }, extensions);
    observeProvider(provider, logger);
    return { provider, handle: provider.callback(), verifyAccessToken: accessTokenVerifier(config.issuer, keySet.keys) };
  };
  let current = build();

  // Rebuilding the provider is how a new keystore takes effect: oidc-provider reads jwks once.
  let refreshing: Promise<void> | undefined;
  const refreshKeys = () =>
    (refreshing ??= (async () => {
      try {
        if ((await signingKeysFingerprint(db, retain)) === keySet.fingerprint) return;
        keySet = await loadSigningKeys(db, secrets.keyEncryptionKey, retain);
        current = build();
      } finally {
        refreshing = undefined;
      }
    })());

  const timers = [
    setInterval(() => refreshKeys().catch((err) => log(`signing key refresh failed: ${String(err)}`)), options.keyRefreshMs ?? 5000),
    setInterval(() => {
      sweepExpiredPayloads(db).catch((err) => log(`sweep of expired OIDC records failed: ${String(err)}`));
      sweepLoginAttempts(db, options.throttle ?? DEFAULT_THROTTLE).catch(() => {});
      sweepRevokedAccessTokens(db).catch(() => {});
      sweepSeenSecurityTokens(db).catch(() => {});
    }, 60_000),
  ];
  for (const t of timers) t.unref();
  const untrackPool = trackPool(db);
  // Cached clients, resource servers and partners for this process, dropped on any change (docs/scaling.md).
  const changeFeed = await startChangeFeed(db, log);

  const app = new Koa();
  app.proxy = config.trustProxy;
  // One trusted hop: the client address is the one our proxy appended, not a leftmost X-Forwarded-For entry the client wrote.
  app.maxIpsCount = 1;
  if (config.tls || config.issuer.startsWith('https:')) app.use(strictTransportSecurity);
  app.use(requestLog(logger, metrics.httpRequest));
  app.use(pageErrors(log));
  app.use(systemRoutes(db, () => keySet.keys.length > 0).routes());
  app.use(
    interactionRoutes({ db, csrfKey: secrets.csrfKey, loginIdKey: secrets.loginIdKey, provider: () => current.provider, throttle: options.throttle }).routes(),
  );
  // REST APIs next to the OIDC endpoints; each verifies bearer tokens with the current signing keys.
  const apiDeps: ApiDeps = { config, db, verifyAccessToken: (token) => current.verifyAccessToken(token), log };
  for (const api of apis) app.use(api(apiDeps));
  // Issue 10 item 4: no protocol parameter that could not be stored or logged reaches oidc-provider.
  app.use(protocolInputGuard());
  app.use(async (ctx) => {
    // Everything else is the OIDC provider's (discovery, authorization, token, JWKS, ...).
    ctx.respond = false;
    // Baseline for every provider response, including oidc-provider's own auto-submit pages (their inline script
    // rules out a CSP here; our own pages set a full one).
    ctx.set({ 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' });
    await current.handle(ctx.req, ctx.res);
  });

  return {
    app,
    provider: () => current.provider,
    refreshKeys,
    async close() {
      for (const t of timers) clearInterval(t);
      untrackPool();
      await changeFeed.close();
      await refreshing;
    },
  };
}

function systemRoutes(db: Db, keysLoaded: () => boolean): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const checks = { database: false, migrations: false, keys: keysLoaded() };
    try {
      await db.raw('select 1');
      checks.database = true;
      checks.migrations = await migrationsCurrent(db);
    } catch {
      // reported below as not ready
    }
    const ready = Object.values(checks).every(Boolean);
    ctx.status = ready ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: ready ? 'ready' : 'not ready', checks };
  });
  router.get('/static/:file', (ctx) => {
    const css = readAsset(ctx.params.file ?? '');
    if (css === undefined) return;
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.body = css;
  });
  return router;
}

// RFC 6797: browsers that reached the issuer over HTTPS never fall back to plaintext for it (one year).
const strictTransportSecurity: Koa.Middleware = (ctx, next) => {
  ctx.set('Strict-Transport-Security', 'max-age=31536000');
  return next();
};

// Errors on our own HTML routes: never a stack trace; the details go to the log with a reference.
function pageErrors(log: (line: string) => void): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        ctx.status = 413;
        setPageSecurityHeaders(ctx);
        ctx.type = 'html';
        ctx.body = renderPage('error', 'Request too large', { error: 'Request too large', description: err.message });
        return;
      }
      if (isDatabaseUnavailable(err)) {
        ctx.status = 503;
        ctx.set('Retry-After', '5');
        setPageSecurityHeaders(ctx);
        ctx.type = 'html';
        ctx.body = renderPage('error', 'Temporarily unavailable', { error: 'The service is temporarily unavailable.', description: 'Please try again in a few seconds.' });
        return;
      }
      const ref = crypto.randomUUID();
      log(`error ${ref} on ${ctx.method} ${ctx.path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      ctx.status = 500;
      setPageSecurityHeaders(ctx);
      ctx.type = 'html';
      ctx.body = renderPage('error', 'Error', { error: 'Internal error', description: `Reference ${ref}` });
    }
  };
}

// TS 33.310 annex E profile: TLS 1.2/1.3 only, AEAD suites with (EC)DHE only, no renegotiation.
const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Bounds on slow or idle clients; tests shorten them to observe the behaviour. */
export type ListenerLimits = { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number; handshakeTimeoutMs: number; checkIntervalMs: number };
export const LISTENER_LIMITS: ListenerLimits = Object.freeze({ headersTimeoutMs: 20_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, handshakeTimeoutMs: 10_000, checkIntervalMs: 1_000 });

export function createListener(config: Config, app: Koa, limits: ListenerLimits = LISTENER_LIMITS): http.Server {
  const handler = app.callback();
  // Node enforces headersTimeout/requestTimeout only when it sweeps connections (every 30 s by default): sweep often,
  // so a slowloris connection is cut close to its deadline.
  const common = { connectionsCheckingInterval: limits.checkIntervalMs };
  const server = config.tls
    ? https.createServer(
        {
          cert: fs.readFileSync(config.tls.cert),
          key: fs.readFileSync(config.tls.key),
          minVersion: 'TLSv1.2',
          maxVersion: 'TLSv1.3',
          ciphers: TLS_CIPHERS,
          honorCipherOrder: true,
          secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION,
          // A TCP connection that never completes the handshake is not yet HTTP, so headersTimeout does not apply (default 120 s).
          handshakeTimeout: limits.handshakeTimeoutMs,
          ...common,
        },
        handler,
      )
    : http.createServer(common, handler);
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxHeadersCount = 100;
  return server;
}

export function listen(server: http.Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
