// Resource exhaustion on loopback: header and body size limits, slow clients (slowloris), many half-open connections,
// on the real listener (createListener) with its timeouts shortened so the behaviour is observable in seconds.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/config/env.ts';
import { deriveSecrets } from '../../src/config/secret.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createListener, listen, LISTENER_LIMITS, type ListenerLimits } from '../../src/http/listener.ts';
import { createIdms, type Idms } from '../../src/server.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_SECRET } from '../helpers/server.ts';
import { SLACK_MS } from '../helpers/timing.ts';
import { cliOk } from '../helpers/cli.ts';
import { provisioningToken, valServerClient } from '../helpers/provisioning.ts';
import { basic, freePort, openLoginForm, provision, VAL_SERVER_SECRET, type Deployment } from './support.ts';

const SHORT: ListenerLimits = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 1000, handshakeTimeoutMs: 1000, checkIntervalMs: 200 };

let database: TestDatabase;
let idms: Idms;
let listener: http.Server;
let issuer: string;
let port: number;
let d: Deployment;
const cleanup: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  const config = loadConfig({ IDMS_ISSUER: issuer, IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET, IDMS_PORT: String(port) });
  idms = await createIdms({ config, db: database.db, secrets: deriveSecrets(TEST_SECRET), log: () => {}, logger: silentLogger() });
  listener = createListener(config, idms.app, SHORT);
  await listen(listener, port, '127.0.0.1');
  d = await provision({ issuer, config, idms, env: { IDMS_ISSUER: issuer, IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET }, close: async () => {} });
  await cliOk(d.server.env, ['val-server', 'add', 'mcx.example.org', '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1']);
});

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
  listener?.closeAllConnections();
  await new Promise((resolve) => listener?.close(resolve));
  await idms?.close();
  await database?.drop();
});

/** The server still answers quickly: a health check and a real token request. */
async function stillServing(maxMs = 1000): Promise<void> {
  const start = performance.now();
  expect((await fetch(`${issuer}/healthz`)).status).toBe(200);
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic('val-server-1', VAL_SERVER_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&resource=https%3A%2F%2Fskms.example.org',
  });
  expect(res.status).toBe(200);
  expect(performance.now() - start).toBeLessThan(maxMs);
}

/** Opens a raw TCP connection and writes `first`; resolves with what the server sent and when it closed. */
function rawConnection(first: string, target = port): { socket: net.Socket; closed: Promise<{ ms: number; data: string }> } {
  const socket = net.connect(target, '127.0.0.1');
  const start = performance.now();
  let data = '';
  socket.on('data', (c: Buffer) => (data += c.toString()));
  socket.on('error', () => {});
  if (first) socket.write(first);
  const closed = new Promise<{ ms: number; data: string }>((resolve) => socket.on('close', () => resolve({ ms: performance.now() - start, data })));
  return { socket, closed };
}

describe('the production listener limits', () => {
  test('timeouts, header count and the header size limit are set on the real listener', () => {
    const server = createListener(d.server.config, idms.app);
    expect({
      headersTimeout: server.headersTimeout,
      requestTimeout: server.requestTimeout,
      keepAliveTimeout: server.keepAliveTimeout,
      maxHeadersCount: server.maxHeadersCount,
    }).toEqual({
      headersTimeout: LISTENER_LIMITS.headersTimeoutMs,
      requestTimeout: LISTENER_LIMITS.requestTimeoutMs,
      keepAliveTimeout: LISTENER_LIMITS.keepAliveTimeoutMs,
      maxHeadersCount: 100,
    });
    expect(LISTENER_LIMITS.headersTimeoutMs).toBeLessThanOrEqual(20_000);
    expect(LISTENER_LIMITS.requestTimeoutMs).toBeLessThanOrEqual(30_000);
    expect(http.maxHeaderSize).toBeLessThanOrEqual(16 * 1024); // no --max-http-header-size raising it
    server.close();
  });
});

describe('size limits', () => {
  test('a 20 KiB header is refused with 431 and the server carries on', async () => {
    const res = await fetch(`${issuer}/healthz`, { headers: { 'x-padding': 'a'.repeat(20 * 1024) } });
    expect(res.status).toBe(431);
    await stillServing();
  });

  test('oversized bodies are refused at the token, introspection, login and provisioning endpoints', async () => {
    const form = await openLoginForm(d.ue);
    const token = await provisioningToken(await valServerClient(d.server, 'mcx', 'mcx-secret-0123456789'), d.server);
    const big = (n: number) => `a=${'x'.repeat(n)}`;
    // oidc-provider stops reading at 56 KiB and answers invalid_request; our own routes answer 413.
    const cases: [string, string, Record<string, string>, string, number][] = [
      [
        'token',
        `${issuer}/token`,
        { authorization: basic('val-server-1', VAL_SERVER_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
        big(100 * 1024),
        400,
      ],
      [
        'introspection',
        `${issuer}/token/introspection`,
        { authorization: basic('val-server-1', VAL_SERVER_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
        big(100 * 1024),
        400,
      ],
      ['login form', form.action, { cookie: form.browser.jar.header(), 'content-type': 'application/x-www-form-urlencoded' }, big(64 * 1024), 413],
      [
        'provisioning',
        `${issuer}/ss-idms-provisioning/v1/configurations`,
        { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        JSON.stringify({ pad: 'x'.repeat(40 * 1024 * 1024) }),
        413,
      ],
    ];
    for (const [name, url, headers, body, status] of cases) {
      const res = await fetch(url, { method: 'POST', headers, body });
      expect({ name, status: res.status }).toEqual({ name, status });
    }
    await stillServing();
  }, 30_000);

  test('a chunked body without Content-Length is cut off at the limit, not buffered', async () => {
    const form = await openLoginForm(d.ue);
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (c: Buffer) => (answer += c.toString()));
    socket.on('error', () => {});
    const path = new URL(form.action).pathname;
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${form.browser.jar.header()}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    const chunk = 'x'.repeat(4096);
    for (let i = 0; i < 64 && !answer; i++) {
      socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    socket.destroy();
  });
});

describe('slow clients', () => {
  test('headers trickling in (slowloris) are cut off after headersTimeout with 408', async () => {
    const { socket, closed } = rawConnection('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const drip = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 200);
    const { ms, data } = await closed;
    clearInterval(drip);
    expect(data).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeGreaterThan(SHORT.headersTimeoutMs - 100);
    expect(ms).toBeLessThan(SHORT.headersTimeoutMs + 3 * SHORT.checkIntervalMs + 500);
  });

  test('a body trickling in is cut off after requestTimeout', async () => {
    const { socket, closed } = rawConnection(
      `POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n`,
    );
    const drip = setInterval(() => socket.writable && socket.write('a'), 200);
    const { ms, data } = await closed;
    clearInterval(drip);
    expect(data).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeLessThan(SHORT.requestTimeoutMs + 3 * SHORT.checkIntervalMs + 500);
  });

  test('a connection that never sends a byte is closed', async () => {
    const { closed } = rawConnection('');
    const { ms } = await closed;
    expect(ms).toBeLessThan(SHORT.headersTimeoutMs + 3 * SHORT.checkIntervalMs + 500);
  });

  test('an idle keep-alive connection is closed after keepAliveTimeout', async () => {
    const { closed } = rawConnection('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const { ms, data } = await closed;
    expect(data).toMatch(/^HTTP\/1\.1 200/);
    // Node adds a one-second buffer to keepAliveTimeout before it closes the socket.
    expect(ms).toBeLessThan(SHORT.keepAliveTimeoutMs + 2500);
  });
});

describe('many half-open connections', () => {
  const N = 400;

  test(`${N} connections stuck in their headers do not stop service, and all are closed by the server`, async () => {
    const conns = Array.from({ length: N }, (_, i) => rawConnection(i % 2 ? 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n' : 'POST /token HTTP/1.1\r\n'));
    await new Promise((r) => setTimeout(r, 100));
    await stillServing(1000);
    const results = await Promise.all(conns.map((c) => c.closed));
    const slowest = Math.max(...results.map((r) => r.ms));
    expect(slowest).toBeLessThan(SHORT.headersTimeoutMs + 3 * SHORT.checkIntervalMs + SLACK_MS);
    await stillServing();
  }, 20_000);

  test(`${N} TCP connections that never start the TLS handshake are dropped after handshakeTimeout`, async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-limits-'));
    cleanup.push(() => fs.rm(dir, { recursive: true, force: true }));
    const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
    ]);
    const tlsPort = await freePort();
    const config = loadConfig({
      IDMS_ISSUER: `https://127.0.0.1:${tlsPort}`,
      IDMS_DATABASE_URL: database.url,
      IDMS_SECRET: TEST_SECRET,
      IDMS_TLS_CERT: cert,
      IDMS_TLS_KEY: key,
    });
    const tlsListener = createListener(config, idms.app, SHORT);
    await listen(tlsListener, tlsPort, '127.0.0.1');
    cleanup.push(() => new Promise((resolve) => tlsListener.close(resolve)));
    const conns = Array.from({ length: N }, () => rawConnection('', tlsPort));
    const results = await Promise.all(conns.map((c) => c.closed));
    // Far below Node's default of 120 s: the listener's own handshakeTimeout closed them.
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(SHORT.handshakeTimeoutMs + 2 * SLACK_MS);
  }, 20_000);
});
