// Prometheus metrics (prom-client): HTTP, logins, tokens, provisioning, database pool; served on their own listener.
import cluster from 'node:cluster';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram } from 'prom-client';
import type { Db } from '../db/knex.ts';
import { statementsExecuted } from '../db/statement-count.ts';

// One registry per process. An AggregatorRegistry is also a plain registry; in a node:cluster worker it
// answers the primary's scrape requests, so IDMS_WORKERS > 1 still exposes one set of sums on one port.
const registry = new AggregatorRegistry();
if (cluster.isWorker) AggregatorRegistry.setRegistries([registry]);

export const metricsRegistry = registry;

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

const httpDuration = new Histogram({
  name: 'idms_http_request_duration_seconds',
  help: 'HTTP requests by method, route template and status, with their latency (its _count is the request count).',
  labelNames: ['method', 'route', 'status'] as const,
  // Logins spend ~50 ms in argon2id; token and JWKS requests a few ms.
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export type LoginResult = 'success' | 'invalid_credentials' | 'throttled' | 'no_val_service';

const logins = new Counter({
  name: 'idms_logins_total',
  help: 'Password logins at the login form by result (success, invalid_credentials, throttled, no_val_service).',
  labelNames: ['result'] as const,
  registers: [registry],
});

const tokensIssued = new Counter({
  name: 'idms_tokens_issued_total',
  help: 'Tokens issued at the token endpoint by grant type and token type (access_token, refresh_token, id_token).',
  labelNames: ['grant_type', 'token_type'] as const,
  registers: [registry],
});

const tokenErrors = new Counter({
  name: 'idms_token_errors_total',
  help: 'Token endpoint requests refused, by grant type and OAuth error code.',
  labelNames: ['grant_type', 'error'] as const,
  registers: [registry],
});

export type ProvisioningOperation = 'provide_configuration' | 'get_configuration' | 'update_configuration' | 'delete_configuration';

const provisioningOps = new Counter({
  name: 'idms_provisioning_operations_total',
  help: 'Provisioning API operations (ss-ipp and the seed-named SS_IdmsVALServerProvisioning) by operation and result.',
  labelNames: ['operation', 'result'] as const,
  registers: [registry],
});

const provisioningUsers = new Counter({
  name: 'idms_provisioning_users_changed_total',
  help: 'VAL service ↔ VAL user mappings added or removed by provisioning operations.',
  labelNames: ['operation'] as const,
  registers: [registry],
});

const pools = new Set<Db>();

new Gauge({
  name: 'idms_db_pool_connections',
  help: 'PostgreSQL connections of this process pool, by state (used, free).',
  labelNames: ['state'] as const,
  registers: [registry],
  collect() {
    let used = 0;
    let free = 0;
    for (const db of pools) {
      const pool = tarnPool(db);
      used += pool?.numUsed() ?? 0;
      free += pool?.numFree() ?? 0;
    }
    this.set({ state: 'used' }, used);
    this.set({ state: 'free' }, free);
  },
});

new Gauge({
  name: 'idms_db_pool_pending_acquires',
  help: 'Queries waiting for a PostgreSQL connection (non-zero for long: raise IDMS_DB_POOL_MAX or add capacity).',
  registers: [registry],
  collect() {
    let pending = 0;
    for (const db of pools) pending += tarnPool(db)?.numPendingAcquires() ?? 0;
    this.set(pending);
  },
});

let statementsSeen = 0;

new Counter({
  name: 'idms_db_statements_total',
  help: 'Statements this process sent to PostgreSQL through its pools (BEGIN and COMMIT included): round trips per request = its rate / the request rate.',
  registers: [registry],
  collect() {
    const now = statementsExecuted();
    this.inc(now - statementsSeen);
    statementsSeen = now;
  },
});

type TarnPool = { numUsed(): number; numFree(): number; numPendingAcquires(): number };

function tarnPool(db: Db): TarnPool | undefined {
  const pool = db.client.pool as Partial<TarnPool> | undefined;
  return pool && typeof pool.numUsed === 'function' ? (pool as TarnPool) : undefined;
}

// Grant types this server can register; anything else a client sends is counted as "other" so that a
// client cannot create unbounded label values.
const GRANT_TYPES = new Set([
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:token-exchange',
  'urn:ietf:params:oauth:grant-type:jwt-bearer',
  'urn:ietf:params:oauth:grant-type:device_code',
  'urn:openid:params:grant-type:ciba',
]);

export function grantTypeLabel(value: unknown): string {
  return typeof value === 'string' && GRANT_TYPES.has(value) ? value : 'other';
}

/** Recording functions; every other module calls these instead of touching prom-client. */
export const metrics = {
  httpRequest(info: { method: string; route: string; status: number; seconds: number }): void {
    const method = HTTP_METHODS.has(info.method) ? info.method : 'other';
    httpDuration.observe({ method, route: info.route, status: String(info.status) }, info.seconds);
  },

  login(result: LoginResult): void {
    logins.inc({ result });
  },

  /** One successful token response: counts each token it carries. */
  tokensIssued(grantType: unknown, body: unknown): void {
    const grant_type = grantTypeLabel(grantType);
    if (!body || typeof body !== 'object') return;
    for (const token_type of ['access_token', 'refresh_token', 'id_token'] as const) {
      if (token_type in body) tokensIssued.inc({ grant_type, token_type });
    }
  },

  tokenError(grantType: unknown, error: unknown): void {
    const code = typeof error === 'string' && /^[a-z_]{1,40}$/.test(error) ? error : 'other';
    tokenErrors.inc({ grant_type: grantTypeLabel(grantType), error: code });
  },

  /**
   * One provisioning API operation (called by src/provisioning): `usersChanged` is the number of
   * (VAL service, VAL user) mappings it added plus those it removed; 0 for reads and failures.
   */
  provisioning(operation: ProvisioningOperation, result: 'success' | 'failure', usersChanged = 0): void {
    provisioningOps.inc({ operation, result });
    if (usersChanged > 0) provisioningUsers.inc({ operation }, usersChanged);
  },
};

/** Reports this knex pool's use in idms_db_pool_*; returns the function that stops reporting it. */
export function trackPool(db: Db): () => void {
  pools.add(db);
  return () => pools.delete(db);
}

let processMetrics = false;

/** Node.js process metrics (CPU, memory, event loop lag, GC), in the processes that are scraped. */
export function enableProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
}

export type MetricsListener = { address: AddressInfo; close(): Promise<void> };

/**
 * The metrics listener (IDMS_METRICS_PORT): GET /metrics and nothing else, on its own address so that it is
 * never reachable through the public listener. With `aggregateWorkers` (the node:cluster primary) it asks
 * every worker for its metrics and answers with the sums.
 */
export async function startMetricsListener(options: { host: string; port: number; aggregateWorkers?: boolean }): Promise<MetricsListener> {
  enableProcessMetrics();
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    (options.aggregateWorkers ? registry.clusterMetrics() : registry.metrics()).then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) =>
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
