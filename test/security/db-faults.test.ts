// The database goes away under load and comes back: 503 everywhere (temporarily_unavailable on OAuth endpoints, HTML
// 503 on pages, problem+json 503 on the provisioning API), /readyz not ready, no crash, and recovery on its own; no
// provisioning is lost or half-written. Uses its own embedded PostgreSQL, which the test stops and starts.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openEmbeddedDatabase, type EmbeddedDatabase } from '../../src/db/embedded.ts';
import { createKnex, type Db } from '../../src/db/knex.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { cliOk } from '../helpers/cli.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { provisioningToken, userIds, valServerClient } from '../helpers/provisioning.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { authRequest, basic, openLoginForm, provision, VAL_SERVER_SECRET, type Deployment, type LoginForm } from './support.ts';

const MCX = 'mcx.example.org';
const SETS = { a: userIds('set-a-', 300), b: userIds('set-b-', 300) };

let dir: string;
let pg: EmbeddedDatabase;
let db: Db;
let server: TestServer;
let d: Deployment;
let provisioningBearer: string;
/** A sign-in page opened before the outage: our own HTML route, next to oidc-provider's. */
let loginForm: LoginForm;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-faults-'));
  await fs.chmod(dir, 0o755); // the postgres OS user (when running as root) must reach pg/ inside
  pg = await openEmbeddedDatabase(dir);
  db = createKnex(pg.url, { max: 10 });
  // knex logs every failed connection attempt to the console (hundreds during the outage); the test checks the answers.
  (db.client as { logger: { warn: (message: string) => void } }).logger.warn = () => {};
  await migrateLatest(db);
  const database: TestDatabase = { url: pg.url, db, name: 'idms', drop: async () => {} };
  server = await startTestServer(database);
  d = await provision(server);
  await cliOk(server.env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1']);
  provisioningBearer = await provisioningToken(await valServerClient(server, 'mcx', 'mcx-secret-0123456789'), server);
  loginForm = await openLoginForm(d.ue);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await db?.destroy();
  await pg?.release();
  await fs.rm(dir, { recursive: true, force: true });
});

type Outcome = { kind: string; status: number; ms: number; at: number; error?: string; type: string };

/** One request of each kind the load mixes: protocol endpoints, a login page, the provisioning API, readiness. */
const requests: Record<string, () => Promise<Response>> = {
  token: () =>
    fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic('val-server-1', VAL_SERVER_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&resource=https%3A%2F%2Fskms.example.org',
    }),
  introspection: () =>
    fetch(`${server.issuer}/token/introspection`, {
      method: 'POST',
      headers: { authorization: basic('val-server-1', VAL_SERVER_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${provisioningBearer}`,
    }),
  authorization: async () => fetch((await authRequest(d.ue)).url, { redirect: 'manual', headers: { accept: 'text/html' } }),
  login: () => fetch(loginForm.loginUrl, { headers: { cookie: loginForm.browser.jar.header() } }),
  provisioning: () =>
    fetch(`${server.issuer}/ss-idms-provisioning/v1/configurations/mcptt-1?limit=1`, { headers: { authorization: `Bearer ${provisioningBearer}` } }),
  readyz: () => fetch(`${server.issuer}/readyz`),
};

async function measure(kind: string, t0: number): Promise<Outcome> {
  const start = performance.now();
  const res = await requests[kind]!();
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  const error = /json/.test(type)
    ? ((JSON.parse(text) as { error?: string; cause?: string }).error ?? (JSON.parse(text) as { cause?: string }).cause)
    : undefined;
  return { kind, status: res.status, ms: performance.now() - start, at: start - t0, error, type };
}

/** Keeps `workers` loops of mixed requests running until stop() and returns every outcome. */
function load(workers: number) {
  const outcomes: Outcome[] = [];
  let running = true;
  const t0 = performance.now();
  const kinds = Object.keys(requests);
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = w; running; i++) {
      outcomes.push(await measure(kinds[i % kinds.length]!, t0));
    }
  });
  return { outcomes, t0, stop: async () => ((running = false), await Promise.all(loops), outcomes) };
}

/** Provide_Configuration replacing mcptt-1 with set a or b, in sequence, recording what was acknowledged. */
function provisioningWriter() {
  const sent: { set: 'a' | 'b'; status: number }[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const set = i % 2 ? 'b' : 'a';
      const res = await fetch(`${server.issuer}/ss-idms-provisioning/v1/configurations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${provisioningBearer}`, 'content-type': 'application/json' },
        body: JSON.stringify({ requesterIdentity: MCX, valServiceInfos: [{ valServiceId: 'mcptt-1', valUserIds: SETS[set] }] }),
      });
      await res.text();
      sent.push({ set, status: res.status });
    }
  })();
  return { sent, stop: async () => ((running = false), await loop, sent) };
}

test('database outage under load: fast 503s, not ready, no crash, recovery within seconds, no half-written provisioning', async () => {
  for (const kind of Object.keys(requests))
    expect({ kind, status: (await measure(kind, 0)).status }).toEqual({ kind, status: kind === 'authorization' ? 303 : 200 });

  const traffic = load(4);
  const writer = provisioningWriter();
  await new Promise((r) => setTimeout(r, 500));

  // Outage: PostgreSQL stops (fast shutdown: open sessions are terminated, new connections refused).
  const stopAt = performance.now() - traffic.t0;
  await pg.release();
  const stoppedAt = performance.now() - traffic.t0;
  await new Promise((r) => setTimeout(r, 2500));

  // Recovery: the same cluster starts again on the same port; nothing is restarted on the server side.
  const restartAt = performance.now() - traffic.t0;
  pg = await openEmbeddedDatabase(dir);
  const restarted = performance.now();
  let recoveredMs = -1;
  for (let i = 0; i < 100 && recoveredMs < 0; i++) {
    const probes = await Promise.all(['token', 'readyz', 'provisioning'].map((k) => measure(k, traffic.t0)));
    if (probes.every((p) => p.status === 200)) recoveredMs = performance.now() - restarted;
    else await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 500));
  const outcomes = await traffic.stop();
  const sent = await writer.stop();

  const during = outcomes.filter((o) => o.at > stoppedAt + 200 && o.at < restartAt);
  const summary = (list: Outcome[]) =>
    Object.entries(Object.groupBy(list, (o) => `${o.kind} ${o.status} ${o.error ?? ''}`.trim()))
      .map(([k, v]) => `${k} ×${v!.length}`)
      .sort();
  console.info(
    `outage: stop took ${(stoppedAt - stopAt).toFixed(0)} ms; ${during.length} requests during the outage: ${summary(during).join(', ')}; recovered ${recoveredMs.toFixed(0)} ms after PostgreSQL restarted`,
  );

  // Never a 500: every failure is a 503 that says what it is.
  expect(outcomes.filter((o) => o.status >= 500 && o.status !== 503)).toEqual([]);
  expect(during.length).toBeGreaterThan(20);
  for (const o of during) {
    const expected = {
      token: { status: 503, error: 'temporarily_unavailable' },
      introspection: { status: 503, error: 'temporarily_unavailable' },
      authorization: { status: 503, error: undefined },
      login: { status: 503, error: undefined },
      provisioning: { status: 503, error: 'TEMPORARILY_UNAVAILABLE' },
      readyz: { status: 503, error: undefined },
    }[o.kind]!;
    expect({ kind: o.kind, status: o.status, error: o.error }).toEqual({ kind: o.kind, ...expected });
    if (o.kind === 'authorization' || o.kind === 'login') expect(o.type).toMatch(/text\/html/);
    if (o.kind === 'provisioning') expect(o.type).toMatch(/application\/problem\+json/);
    // Fail fast: well under the 3 s pool acquire timeout, let alone a client's patience.
    expect({ kind: o.kind, fast: o.ms < 1000 }).toEqual({ kind: o.kind, fast: true });
  }
  expect(recoveredMs).toBeGreaterThanOrEqual(0);
  expect(recoveredMs).toBeLessThan(5000);

  // Provisioning: the stored set is exactly one request's set, and no acknowledged write was lost.
  const stored = (await db('val_service_users')
    .where({ val_service_id: 'mcptt-1', provisioned_by: MCX })
    .orderBy('val_user_id')
    .pluck('val_user_id')) as string[];
  const lastAcked = sent.map((s) => s.status).lastIndexOf(200);
  const possible = new Set(sent.slice(Math.max(lastAcked, 0)).map((s) => s.set));
  expect(sent.some((s) => s.status === 503)).toBe(true);
  expect(sent.filter((s) => s.status !== 200 && s.status !== 503)).toEqual([]);
  expect([...possible].some((set) => JSON.stringify(stored) === JSON.stringify(SETS[set]))).toBe(true);
}, 60_000);

test('backends terminated from the server side (pg_terminate_backend) cost no request a 500', async () => {
  const admin = createKnex(pg.url, { max: 1 });
  try {
    const traffic = load(4);
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 150));
      await admin.raw(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
      );
    }
    await new Promise((r) => setTimeout(r, 300));
    const outcomes = await traffic.stop();
    expect(outcomes.filter((o) => o.status >= 500 && o.status !== 503)).toEqual([]);
    // The pool replaces killed connections by itself: the service is whole again.
    for (const kind of Object.keys(requests))
      expect({ kind, status: (await measure(kind, 0)).status }).toEqual({ kind, status: kind === 'authorization' ? 303 : 200 });
  } finally {
    await admin.destroy();
  }
}, 30_000);
