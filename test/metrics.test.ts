// Prometheus metrics: counters move with logins and grants, and /metrics lives only on its own listener.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { call, provisioningToken, ssIpp, ssIppToken, valServerClient } from './helpers/provisioning.ts';
import { startMetricsListener, type MetricsListener } from '../src/observability/metrics.ts';
import { freePort } from './helpers/net.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const REDIRECT = 'http://127.0.0.1:8126/cb';

let database: TestDatabase;
let server: TestServer;
let listener: MetricsListener;
let ue: oidc.Configuration;
let valServer: oidc.Configuration;

/** The value of one sample in Prometheus text format (0 when the series does not exist yet). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

const scrape = async (port = listener.address.port) => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
};

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  listener = await startMetricsListener({ host: '127.0.0.1', port: 0 });
  await cliOk(server.env, ['user', 'add', 'erin', '--password', 'erin-password-1']);
  await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'erin']);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  await cliOk(server.env, ['client', 'add', 'val-server-1', '--secret', 'val-server-secret-1', '--grant', 'client_credentials']);
  const opts = { execute: [oidc.allowInsecureRequests] };
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), opts);
  valServer = await oidc.discovery(new URL(server.issuer), 'val-server-1', 'val-server-secret-1', undefined, opts);
});

afterAll(async () => {
  await listener?.close();
  await server?.close();
  await database?.drop();
});

test('a login and a client_credentials grant move the login, token, HTTP and pool metrics', async () => {
  const before = await scrape();

  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(ue, {
    redirect_uri: REDIRECT,
    scope: 'openid offline_access 3gpp:seal:val_service',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    prompt: 'consent',
  });
  const browser = new Browser();
  const page = await browser.openAuthorization(url, REDIRECT);
  if ('callback' in page) throw new Error('expected the login page');
  const failed = await browser.submitLogin(page.loginUrl, page.html, 'erin', 'not-her-password', REDIRECT);
  expect(failed.status).toBe(400);
  const ok = await browser.submitLogin(page.loginUrl, failed.html, 'erin', 'erin-password-1', REDIRECT);
  await oidc.authorizationCodeGrant(ue, new URL(ok.callback!), { pkceCodeVerifier: verifier, expectedState: oidc.skipStateCheck });
  await oidc.clientCredentialsGrant(valServer);
  const wrong = await oidc.discovery(new URL(server.issuer), 'val-server-1', 'wrong-secret', undefined, { execute: [oidc.allowInsecureRequests] });
  await expect(oidc.clientCredentialsGrant(wrong)).rejects.toMatchObject({ error: 'invalid_client' });
  await new Promise((r) => setTimeout(r, 50)); // request metrics are recorded when the response has finished

  const after = await scrape();
  const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);

  expect(delta('idms_logins_total', { result: 'success' })).toBe(1);
  expect(delta('idms_logins_total', { result: 'invalid_credentials' })).toBe(1);
  for (const token_type of ['access_token', 'id_token', 'refresh_token']) {
    expect(delta('idms_tokens_issued_total', { grant_type: 'authorization_code', token_type })).toBe(1);
  }
  expect(delta('idms_tokens_issued_total', { grant_type: 'client_credentials', token_type: 'access_token' })).toBe(1);
  expect(delta('idms_tokens_issued_total', { grant_type: 'client_credentials', token_type: 'refresh_token' })).toBe(0);
  expect(delta('idms_token_errors_total', { grant_type: 'client_credentials', error: 'invalid_client' })).toBe(1);

  // Requests by route template (never the raw path) and status, with latency buckets.
  expect(delta('idms_http_request_duration_seconds_count', { method: 'POST', route: 'token', status: '200' })).toBe(2);
  expect(delta('idms_http_request_duration_seconds_count', { method: 'POST', route: 'token', status: '401' })).toBe(1);
  expect(delta('idms_http_request_duration_seconds_count', { method: 'POST', route: '/interaction/:uid/login', status: '400' })).toBe(1);
  expect(delta('idms_http_request_duration_seconds_count', { method: 'GET', route: 'authorization', status: '303' })).toBe(1);
  expect(delta('idms_http_request_duration_seconds_bucket', { method: 'POST', route: 'token', status: '200', le: '+Inf' })).toBe(2);
  expect(after).not.toMatch(/route="\/interaction\/[A-Za-z0-9_-]{20,}/);

  // Pool: the queries above left idle connections in this server's pool.
  expect(sample(after, 'idms_db_pool_connections', { state: 'free' }) + sample(after, 'idms_db_pool_connections', { state: 'used' })).toBeGreaterThan(0);
  expect(after).toMatch(/^idms_db_pool_pending_acquires 0$/m);
  // Node.js process metrics come with it.
  expect(sample(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
});

test('provisioning calls over HTTP, on ss-ipp and the seed-named API, count operations and the pairs they changed', async () => {
  const REQUESTER = 'val-server-metrics.example.org';
  await cliOk(server.env, [
    'val-server',
    'add',
    REQUESTER,
    '--client-id',
    'val-metrics',
    '--secret',
    'val-metrics-secret-0123456789',
    '--services',
    'mcptt-9,mcdata-9',
  ]);
  const client = await valServerClient(server, 'val-metrics', 'val-metrics-secret-0123456789');
  const [token, seedToken] = [await ssIppToken(client), await provisioningToken(client, server)];
  const before = await scrape();

  // ss-ipp (TS 29.549): create 3 pairs, read, a refused create (a VAL service outside the SLA), delete the 3 pairs.
  const created = await ssIpp(server, 'POST', '/configurations', '/configurations', {
    token,
    json: { valServerId: REQUESTER, valSvcConf: [{ valServiceId: 'mcptt-9', idList: [{ valUserId: 'm1' }, { valUserId: 'm2' }, { valUserId: 'm3' }] }] },
  });
  expect(created.status).toBe(201);
  const confId = new URL(created.headers.get('location')!).pathname.split('/').pop()!;
  expect((await ssIpp(server, 'GET', '/configurations/{confId}', `/configurations/${confId}`, { token })).status).toBe(200);
  const refused = await ssIpp(server, 'POST', '/configurations', '/configurations', {
    token,
    json: { valServerId: REQUESTER, valSvcConf: [{ valServiceId: 'not-in-sla', idList: [{ valUserId: 'm4' }] }] },
  });
  expect(refused.status).toBe(403);
  expect((await ssIpp(server, 'DELETE', '/configurations/{confId}', `/configurations/${confId}`, { token })).status).toBe(204);

  // The seed-named API: provide 2 pairs, then a PATCH that adds one and removes one.
  expect(
    (
      await call(server, 'POST', '/configurations', {
        token: seedToken,
        json: { requesterIdentity: REQUESTER, valServiceInfos: [{ valServiceId: 'mcdata-9', valUserIds: ['d1', 'd2'] }] },
      })
    ).status,
  ).toBe(200);
  expect((await call(server, 'PATCH', '/configurations/mcdata-9', { token: seedToken, json: { add: ['d3'], remove: ['d1'] } })).status).toBe(200);

  const after = await scrape();
  const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
  const operations = (operation: string, result: string) => delta('idms_provisioning_operations_total', { operation, result });
  expect(operations('provide_configuration', 'success')).toBe(2);
  expect(operations('provide_configuration', 'failure')).toBe(1);
  expect(operations('get_configuration', 'success')).toBe(1);
  expect(operations('update_configuration', 'success')).toBe(1);
  expect(operations('delete_configuration', 'success')).toBe(1);
  expect(delta('idms_provisioning_users_changed_total', { operation: 'provide_configuration' })).toBe(3 + 2);
  expect(delta('idms_provisioning_users_changed_total', { operation: 'update_configuration' })).toBe(2);
  expect(delta('idms_provisioning_users_changed_total', { operation: 'delete_configuration' })).toBe(3);
});

test('an unknown grant type is counted as "other", not as a new label value', async () => {
  const before = await scrape();
  const res = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from('val-server-1:val-server-secret-1').toString('base64')}`,
    },
    body: 'grant_type=urn:example:made-up',
  });
  expect(res.status).toBe(400);
  const after = await scrape();
  expect(
    sample(after, 'idms_token_errors_total', { grant_type: 'other', error: 'unsupported_grant_type' }) -
      sample(before, 'idms_token_errors_total', { grant_type: 'other', error: 'unsupported_grant_type' }),
  ).toBe(1);
  expect(after).not.toContain('made-up');
});

test('/metrics is not served on the public listener, and the metrics listener serves nothing else', async () => {
  expect((await fetch(`${server.issuer}/metrics`)).status).toBe(404);
  expect((await fetch(`http://127.0.0.1:${listener.address.port}/`)).status).toBe(404);
  expect((await fetch(`http://127.0.0.1:${listener.address.port}/healthz`)).status).toBe(404);
  expect((await fetch(`http://127.0.0.1:${listener.address.port}/metrics`, { method: 'POST' })).status).toBe(404);
});

describe('serve with IDMS_METRICS_PORT', () => {
  async function serve(extraEnv: Record<string, string>): Promise<{ child: ChildProcess; port: number; metricsPort: number; output: () => string }> {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, ['src/main.ts', 'serve'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        IDMS_DATABASE_URL: database.url,
        IDMS_SECRET: TEST_SECRET,
        IDMS_PORT: String(port),
        IDMS_ISSUER: `http://127.0.0.1:${port}`,
        IDMS_METRICS_PORT: String(metricsPort),
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c));
    child.stderr!.on('data', (c: Buffer) => (output += c));
    const until = Date.now() + 30_000;
    while (Date.now() < until && child.exitCode === null) {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) return { child, port, metricsPort, output: () => output };
      await new Promise((r) => setTimeout(r, 200));
    }
    child.kill('SIGKILL');
    throw new Error(`serve did not become ready:\n${output}`);
  }

  async function stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  test('one process: metrics on their own port, JSON log lines on stderr', async () => {
    const { child, port, metricsPort, output } = await serve({ IDMS_WORKERS: '1' });
    try {
      for (let i = 0; i < 3; i++) await fetch(`http://127.0.0.1:${port}/healthz`);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
      const text = await scrape(metricsPort);
      expect(sample(text, 'idms_http_request_duration_seconds_count', { method: 'GET', route: '/healthz', status: '200' })).toBe(3);
      expect(sample(text, 'idms_http_request_duration_seconds_count', { route: 'unmatched', status: '404' })).toBe(1);
    } finally {
      await stop(child);
    }
    const logLines = output()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logLines).toContainEqual(expect.objectContaining({ level: 'info', msg: expect.stringMatching(/^seal-idms listening on http:\/\/127\.0\.0\.1:/) }));
    expect(logLines.filter((l) => l.msg === 'request' && l.path === '/healthz')).toHaveLength(3);
  });

  test('a cluster: the primary answers with the sum over its workers', async () => {
    const { child, port, metricsPort } = await serve({ IDMS_WORKERS: '2' });
    try {
      // New connections each time, so the primary spreads them over both workers.
      for (let i = 0; i < 6; i++) await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { connection: 'close' } });
      const text = await scrape(metricsPort);
      expect(sample(text, 'idms_http_request_duration_seconds_count', { method: 'GET', route: '/healthz', status: '200' })).toBe(6);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    } finally {
      await stop(child);
    }
  });
});
