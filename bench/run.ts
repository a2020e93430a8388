// `npm run bench`: starts seal-idms (all cores) and the bare oidc-provider baseline, seeds them, measures each flow, writes
// the generated report to bench/results/latest-embedded.md (or latest-external.md with BENCH_DATABASE_URL; BENCH_OUT=path
// elsewhere). It never touches bench/RESULTS.md, which holds the hand-written analysis (targets, before/after, profiles).
// Environment: BENCH_QUICK=1 (smoke run), BENCH_DATABASE_URL or IDMS_DATABASE_URL (PostgreSQL server instead of the
// embedded one), BENCH_WORKERS, BENCH_SECONDS, BENCH_RUNS, BENCH_CONCURRENCY, BENCH_LOGIN_CONCURRENCY,
// BENCH_ONLY=login,client_credentials,… , BENCH_CPU_PROF=<dir> (write V8 CPU profiles of seal-idms, and of the baseline in <dir>/baseline), BENCH_NO_BASELINE=1,
// BENCH_SERVER_ENV="K=V …" (extra environment for seal-idms), BENCH_NODE_FLAGS="--flag …" (Node/V8 flags for both servers), BENCH_KEEP=1 (keep the temp dir and logs), BENCH_NO_WRITE=1,
// BENCH_OUT=<file> (where the generated report goes), BENCH_SOURCE=1 (run the TypeScript sources as `npm start` does,
// instead of the built package that `npm install seal-idms` installs).
// Per flow it also reports statements per request (pg_stat_statements where the server preloads it — the embedded
// PostgreSQL the bench starts does — and always the server's own counter, idms_db_statements_total) and CPU ms per
// request of seal-idms' processes, PostgreSQL and the load generator (bench/cost.ts).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/env.ts';
import { openDatabase } from '../src/db/database.ts';
import { openEmbeddedDatabase } from '../src/db/embedded.ts';
import { createKnex } from '../src/db/knex.ts';
import { listClients } from '../src/oidc/clients.ts';
import { hashPassword } from '../src/users/passwords.ts';
import type { BaselineSetup } from './baseline/server.ts';
import { passwordLogin, RefreshChains } from './flows.ts';
import { closedLoop, HttpClient, paced, type LoadResult } from './load.ts';
import {
  coreScenarios,
  federationScenarios,
  JWT_BEARER,
  OPAQUE,
  prepareFederation,
  SKMS,
  TOKEN_EXCHANGE,
  VAL_SCOPE,
  type Scenario,
  type Target,
  type TargetName,
} from './scenarios.ts';
import { cliOk, freePort, memoryOf, processTree, ROOT, startProcess, type ProcessMemory } from './servers.ts';
import { runProvisioningBench } from './provisioning.ts';
import {
  addCost,
  backendsOf,
  costBetween,
  nodePids,
  pgssByStatement,
  pgssCounter,
  postmasterTree,
  sample,
  scrapeStatements,
  statementDelta,
  type Cost,
  type CostProbe,
} from './cost.ts';

const env = process.env;
const num = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback);
const QUICK = env.BENCH_QUICK === '1';
const SECONDS = num('BENCH_SECONDS', QUICK ? 1 : 4);
const RUNS = num('BENCH_RUNS', QUICK ? 1 : 3);
const WARMUP_SECONDS = QUICK ? 0.5 : 1;
const CONCURRENCY = num('BENCH_CONCURRENCY', 32);
const LOGIN_CONCURRENCY = num('BENCH_LOGIN_CONCURRENCY', 8);
const WORKERS = num('BENCH_WORKERS', os.availableParallelism());
const USERS = QUICK ? 20 : 100;
const CHAINS = Math.max(64, CONCURRENCY * 2);
const ONLY = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',')) : undefined;
const PASSWORD = 'bench-password-1';

type Outcome = { runs: LoadResult[]; median: LoadResult; half?: LoadResult; error?: string; cost?: Cost; costOk?: number; statements?: Map<string, number> };

const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)]!;

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = os.loadavg();
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-bench-'));
  await fs.chmod(tmp, 0o755); // the postgres OS user (when running as root) must reach the data dir
  const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
  // BENCH_KEEP=1 keeps the data dir and the servers' logs for a look afterwards.
  const cleanups: (() => Promise<void>)[] = [
    async () => {
      if (env.BENCH_KEEP) log(`kept ${tmp}`);
      else await fs.rm(tmp, { recursive: true, force: true });
    },
  ];
  try {
    const external = env.BENCH_DATABASE_URL || env.IDMS_DATABASE_URL;
    const database = external ? await scratchDatabase(external, cleanups) : undefined;
    // The embedded PostgreSQL is started here (seal-idms attaches to it in the same data dir) so that it can load
    // pg_stat_statements, which needs a server start with shared_preload_libraries.
    const pgDataDir = path.join(tmp, 'data', 'pg');
    if (!database) {
      const embedded = await openEmbeddedDatabase(path.join(tmp, 'data'), log, {
        postgresFlags: ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track_utility=on'],
      });
      cleanups.unshift(() => embedded.release());
    }
    const metricsPort = await freePort();

    // seal-idms as an operator runs it: production mode, `serve`, all cores.
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const idmsEnv: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('IDMS_') && !k.startsWith('BENCH_'))),
      NODE_ENV: 'production',
      IDMS_SECRET: crypto.randomBytes(32).toString('base64url'),
      IDMS_DATA_DIR: path.join(tmp, 'data'),
      IDMS_PORT: String(port),
      IDMS_ISSUER: origin,
      IDMS_WORKERS: String(WORKERS),
      IDMS_METRICS_PORT: String(metricsPort),
      ...(database ? { IDMS_DATABASE_URL: database } : {}),
      // Experiments: BENCH_SERVER_ENV="IDMS_LOG_LEVEL=warn IDMS_DB_POOL_MAX=4" reaches the seal-idms processes only.
      ...Object.fromEntries(
        (env.BENCH_SERVER_ENV ?? '')
          .split(/\s+/)
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      ),
    };
    const profile = env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(env.BENCH_CPU_PROF)}`] : [];
    log(`starting seal-idms (${WORKERS} workers, ${database ? 'external PostgreSQL' : 'embedded PostgreSQL'})`);
    const entry = env.BENCH_SOURCE === '1' ? 'src/main.ts' : await buildPackage(cleanups, log);
    // BENCH_NODE_FLAGS="--trace-gc …": V8/Node flags for both servers' processes (NODE_OPTIONS refuses some); workers inherit them.
    const nodeFlags = (env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
    const ours = await startProcess('seal-idms', [...profile, ...nodeFlags, entry, 'serve'], idmsEnv, origin, '/readyz', path.join(tmp, 'seal-idms.log'));
    cleanups.unshift(() => ours.stop());

    log(`seeding ${USERS} VAL users, clients, resource servers`);
    const users = Array.from({ length: USERS }, (_, i) => ({ id: `bench-user-${i}`, password: PASSWORD }));
    const passwordHash = await hashPassword(PASSWORD);
    const config = loadConfig(idmsEnv);
    const db = await openDatabase(config, { migrate: false, poolMax: 2 });
    let pgVersion: string;
    let serverUrl: string;
    try {
      await db.db('val_users').insert(users.map((u) => ({ val_user_id: u.id, password_hash: passwordHash })));
      pgVersion = String((await db.db.raw('show server_version')).rows[0].server_version);
      serverUrl = db.url;
    } finally {
      await db.close();
    }
    const services: Record<string, string[]> = {};
    for (const u of users) services[u.id] = ['bench-svc-1'];
    for (const u of users.slice(0, USERS / 2)) services[u.id]!.push('bench-svc-2');
    await cliOk(idmsEnv, ['service', 'grant', 'bench-svc-1', ...users.map((u) => u.id)]);
    await cliOk(idmsEnv, ['service', 'grant', 'bench-svc-2', ...users.slice(0, USERS / 2).map((u) => u.id)]);
    const federation = await prepareFederation(origin, tmp, idmsEnv);
    if (!federation.tokenExchange || !federation.jwtBearer) log('the server does not advertise token exchange / JWT bearer: those flows are left out');
    const ue = { clientId: 'bench-ue', redirectUri: 'http://127.0.0.1:9/cb' };
    const valServer = { clientId: 'bench-val-server', secret: crypto.randomBytes(24).toString('hex') };
    const ueGrants = [
      'authorization_code',
      'refresh_token',
      ...(federation.tokenExchange ? [TOKEN_EXCHANGE] : []),
      ...(federation.jwtBearer ? [JWT_BEARER] : []),
    ];
    await cliOk(idmsEnv, [
      'client',
      'add',
      ue.clientId,
      '--public',
      '--redirect-uri',
      ue.redirectUri,
      '--name',
      'Benchmark VAL client',
      ...ueGrants.flatMap((g) => ['--grant', g]),
    ]);
    await cliOk(idmsEnv, ['client', 'add', valServer.clientId, '--secret', valServer.secret, '--grant', 'client_credentials']);
    await cliOk(idmsEnv, ['resource', 'add', SKMS, '--scope', VAL_SCOPE]);

    // Statement counts and the PostgreSQL backends doing seal-idms' work, read through a connection of our own.
    const monitor = createKnex(serverUrl, { max: 1 });
    cleanups.unshift(() => monitor.destroy());
    const pgss = await pgssCounter(monitor);
    log(
      pgss
        ? 'statements per request from pg_stat_statements and the server counter'
        : 'pg_stat_statements not preloaded by this PostgreSQL: statements per request from the server counter (idms_db_statements_total)',
    );
    const probes = new Map<TargetName, CostProbe>();
    probes.set('seal-idms', {
      serverPids: () => nodePids(ours.child.pid!),
      pgPids: async () => (database ? backendsOf(monitor) : postmasterTree(pgDataDir)),
      pgssStatements: async () => pgss?.(),
      serverStatements: () => scrapeStatements(`http://127.0.0.1:${metricsPort}`),
    });

    const targets: Target[] = [];
    targets.push({
      name: 'seal-idms',
      issuer: origin,
      server: ours,
      http: new HttpClient(origin, CONCURRENCY),
      ue,
      valServer,
      users,
      chains: new RefreshChains([]),
      introspectionResource: SKMS,
    });

    if (env.BENCH_NO_BASELINE !== '1') {
      const clientsDb = await openDatabase(config, { migrate: false, poolMax: 1 });
      const clients = await listClients(clientsDb.db).finally(() => clientsDb.close());
      const basePort = await freePort();
      const baseOrigin = `http://127.0.0.1:${basePort}`;
      const setup: BaselineSetup = {
        issuer: baseOrigin,
        // Stored client records hold a hash of the secret (src/oidc/at-rest.ts): the baseline gets the secret itself.
        clients: (clients as Record<string, unknown>[]).map(({ client_secret_hash: _hash, ...c }) =>
          c.client_id === valServer.clientId ? { ...c, client_secret: valServer.secret } : c,
        ),
        users: Object.fromEntries(users.map((u) => [u.id, passwordHash])),
        services,
        resources: { 'urn:3gpp:seal': VAL_SCOPE, [SKMS]: VAL_SCOPE, [OPAQUE]: VAL_SCOPE },
        opaqueResources: [OPAQUE],
        defaultResource: 'urn:3gpp:seal',
        partnerIssuer: federation.partnerIssuer,
        partnerJwks: federation.partnerJwks as BaselineSetup['partnerJwks'],
      };
      log('starting the baseline (bare oidc-provider, in-memory, one process)');
      const baseline = await startProcess(
        'baseline',
        [
          ...(env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(env.BENCH_CPU_PROF, 'baseline')}`] : []),
          ...nodeFlags,
          'bench/baseline/server.ts',
        ],
        { ...idmsEnv, BASELINE_PORT: String(basePort), BASELINE_SETUP: JSON.stringify(setup) },
        baseOrigin,
        '/.well-known/openid-configuration',
        path.join(tmp, 'baseline.log'),
      );
      cleanups.unshift(() => baseline.stop());
      probes.set('baseline', {
        serverPids: () => processTree(baseline.child.pid!),
        pgPids: async () => [],
        pgssStatements: async () => undefined,
        serverStatements: async () => undefined,
      });
      targets.push({
        name: 'baseline',
        issuer: baseOrigin,
        server: baseline,
        http: new HttpClient(baseOrigin, CONCURRENCY),
        ue,
        valServer,
        users,
        chains: new RefreshChains([]),
        introspectionResource: OPAQUE,
      });
    }

    // Refresh chains: each starts with a real login asking for offline_access.
    for (const t of targets) {
      const tokens: string[] = [];
      const seed = await closedLoop(
        async () => {
          tokens.push((await passwordLogin(t, pick(users), `openid offline_access ${VAL_SCOPE}`)).refresh_token!);
        },
        { concurrency: LOGIN_CONCURRENCY, seconds: 120, maxCount: CHAINS },
      );
      if (seed.errors) throw new Error(`${t.name}: logins for refresh chains failed: ${seed.errorSamples.join('; ')}`);
      t.chains = new RefreshChains(tokens);
    }

    const scenarios = [
      ...coreScenarios({ concurrency: CONCURRENCY, loginConcurrency: LOGIN_CONCURRENCY }),
      ...federationScenarios(federation, { concurrency: CONCURRENCY }),
    ].filter((s) => !ONLY || ONLY.has(s.key));
    const results = new Map<string, Map<TargetName, Outcome>>();
    for (const s of scenarios) {
      const active = targets.filter((t) => s.targets.includes(t.name));
      const byTarget = new Map<TargetName, Outcome>();
      results.set(s.key, byTarget);
      const runs = new Map<TargetName, LoadResult[]>(active.map((t) => [t.name, []]));
      const costs = new Map<TargetName, { cost?: Cost; ok: number; statements?: Map<string, number> }>(active.map((t) => [t.name, { ok: 0 }]));
      const failed = new Map<TargetName, string>();
      const attempt = async (t: Target, fn: () => Promise<void>) => {
        if (failed.has(t.name)) return;
        try {
          await fn();
        } catch (err) {
          failed.set(t.name, err instanceof Error ? err.message : String(err));
        }
      };
      for (const t of active) {
        await attempt(t, async () => {
          await s.prepare?.(t);
          await closedLoop(s.op(t), { concurrency: s.concurrency, seconds: WARMUP_SECONDS });
        });
      }
      // Runs interleave the targets, so a burst of noise from other work on the machine hits both.
      for (let r = 0; r < RUNS; r++) {
        for (const t of active) {
          await attempt(t, async () => {
            await s.prepare?.(t);
            const probe = probes.get(t.name)!;
            const listed = pgss && t.name === 'seal-idms' ? await pgssByStatement(monitor) : undefined;
            const before = await sample(probe);
            const res = await closedLoop(s.op(t), { concurrency: s.concurrency, seconds: SECONDS });
            const c = costs.get(t.name)!;
            c.cost = addCost(c.cost, costBetween(before, await sample(probe)));
            if (listed) c.statements = statementDelta(listed, await pgssByStatement(monitor), c.statements);
            c.ok += res.ok;
            runs.get(t.name)!.push(res);
            log(
              `${s.key} ${t.name} run ${r + 1}: ${res.rate.toFixed(0)}/s p50 ${res.p50.toFixed(1)} ms p99 ${res.p99.toFixed(1)} ms errors ${res.errors}${res.errors ? ` (${res.errorSamples[0]})` : ''}`,
            );
          });
        }
      }
      for (const t of active) {
        const list = runs.get(t.name)!;
        if (!list.length) {
          byTarget.set(t.name, { runs: [], median: emptyResult(), error: failed.get(t.name) ?? 'no run' });
          log(`${s.key} ${t.name} failed: ${failed.get(t.name)}`);
          continue;
        }
        const median = [...list].sort((a, b) => a.rate - b.rate)[Math.floor(list.length / 2)]!;
        const outcome: Outcome = {
          runs: list,
          median,
          error: failed.get(t.name),
          cost: costs.get(t.name)!.cost,
          costOk: costs.get(t.name)!.ok,
          statements: costs.get(t.name)!.statements,
        };
        byTarget.set(t.name, outcome);
        await attempt(t, async () => {
          await s.prepare?.(t);
          const rate = Math.max(1, median.rate / 2);
          outcome.half = await paced(s.op(t), { rate, seconds: SECONDS, maxInFlight: s.concurrency * 8 });
          log(
            `${s.key} ${t.name} at ${rate.toFixed(0)}/s (half max): p50 ${outcome.half.p50.toFixed(1)} ms p99 ${outcome.half.p99.toFixed(1)} ms errors ${outcome.half.errors}`,
          );
        });
      }
    }

    const memory = new Map<TargetName, LabelledMemory[]>(targets.map((t) => [t.name, labelled(t.server.child.pid!)]));
    // The embedded PostgreSQL is the bench's child, not seal-idms': its processes are listed with seal-idms.
    if (!database)
      memory.get('seal-idms')!.push(
        ...memoryOf(postmasterTree(pgDataDir)).map((p) => ({
          ...p,
          label: `PostgreSQL ${p.command.replace(/^.*postgres:?\s*/, '').slice(0, 40) || 'postmaster'}`,
        })),
      );
    const provisioning = await provisioningBench(serverUrl, log);
    for (const t of targets) t.http.close();

    const load = os.loadavg();
    const report = renderReport({
      scenarios,
      results,
      memory,
      pgVersion,
      external: Boolean(database),
      pgss: Boolean(pgss),
      provisioning,
      elapsed: (Date.now() - started) / 1000,
      load,
      loadAtStart,
    });
    process.stdout.write(report.table + '\n');
    // The generated report goes to a file of its own: bench/RESULTS.md is written by hand from these reports.
    const out = path.resolve(env.BENCH_OUT ?? path.join(ROOT, 'bench', 'results', `latest-${database ? 'external' : 'embedded'}.md`));
    if (!env.BENCH_NO_WRITE) {
      await fs.mkdir(path.dirname(out), { recursive: true });
      await fs.writeFile(out, report.markdown);
    }
    log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s${env.BENCH_NO_WRITE ? '' : `; wrote ${path.relative(ROOT, out)}`}`);
  } finally {
    for (const c of cleanups) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  }
}

/** bench/provisioning.ts (100,000-user Provide_Configuration, token-time lookup among 1,000,000 mappings) on the same PostgreSQL server. */
async function provisioningBench(serverUrl: string, log: (line: string) => void): Promise<string | undefined> {
  if (ONLY && !ONLY.has('provisioning')) return undefined;
  log('provisioning benchmark (bench/provisioning.ts)');
  try {
    const r = await runProvisioningBench({
      databaseUrl: serverUrl,
      log: (line) => log(`provisioning: ${line}`),
      ...(QUICK ? { users: 10_000, runs: 1, mappings: 100_000, lookups: 1000 } : {}),
    });
    return [
      `| figure | value | target |`,
      `|---|---:|---|`,
      `| one Provide_Configuration of ${r.users.toLocaleString('en')} VAL users (median of ${r.provideSeconds.length}, HTTP request to response) | ${r.provideMedianSeconds.toFixed(2)} s | ≤ 3 s for 100,000 |`,
      `| replace of that set by one overlapping it by half | ${r.replaceSeconds.toFixed(2)} s | |`,
      `| one ss-ipp CreateValServiceConf of ${r.users.toLocaleString('en')} idList entries (median of ${r.createSeconds.length}, HTTP request to 201) | ${r.createMedianSeconds.toFixed(2)} s | ≤ 3 s for 100,000 |`,
      `| services-of-user lookup at token issuance, ${r.mappings.toLocaleString('en')} mappings stored (${r.lookups} lookups) | p50 ${r.lookupP50Ms.toFixed(2)} ms, p99 ${r.lookupP99Ms.toFixed(2)} ms (${r.indexScan ? 'index scan' : 'NOT an index scan'}) | |`,
    ].join('\n');
  } catch (err) {
    return `failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/**
 * The server package as `npm install seal-idms` installs it (compiled JavaScript: Node does not strip types at start,
 * whose compiler alone holds ~35 MB per process), built by scripts/build.ts into a directory of its own under
 * node_modules/.cache, so that a run never races a build of dist/. Returns the bin to start.
 */
async function buildPackage(cleanups: (() => Promise<void>)[], log: (line: string) => void): Promise<string> {
  const out = path.join(ROOT, 'node_modules', '.cache', 'seal-idms-bench', crypto.randomBytes(4).toString('hex'));
  cleanups.push(() => fs.rm(out, { recursive: true, force: true }));
  log(`building the server package into ${path.relative(ROOT, out)}`);
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.ts'), '--package', '--out', out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  return path.join(out, 'bin', 'seal-idms.js');
}

/** A database of its own on the given PostgreSQL server (dropped afterwards), or the given one if we may not create one. */
async function scratchDatabase(url: string, cleanups: (() => Promise<void>)[]): Promise<string> {
  const name = `idms_bench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = createKnex(url, { max: 1 });
  try {
    await admin.raw(`create database ${name}`);
  } catch {
    await admin.destroy();
    return url;
  }
  await admin.destroy();
  cleanups.push(async () => {
    const a = createKnex(url, { max: 1 });
    await a.raw(`drop database if exists ${name} with (force)`).finally(() => a.destroy());
  });
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

function emptyResult(): LoadResult {
  return { ok: 0, errors: 0, rate: 0, seconds: 0, p50: NaN, p99: NaN, max: NaN, errorSamples: [] };
}

type ReportInput = {
  scenarios: Scenario[];
  results: Map<string, Map<TargetName, Outcome>>;
  memory: Map<TargetName, LabelledMemory[]>;
  pgVersion: string;
  external: boolean;
  pgss: boolean;
  load: number[];
  loadAtStart: number[];
  provisioning: string | undefined;
  elapsed: number;
};

function renderReport(input: ReportInput): { table: string; markdown: string } {
  const f0 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(0));
  const f1 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(1));
  const header = [
    'flow',
    'seal-idms /s',
    'p50 ms',
    'p99 ms',
    'errors',
    'p99 @½ max',
    'baseline /s',
    'p50 ms',
    'p99 ms',
    'errors',
    'p99 @½ max',
    'ours/baseline',
    'target',
  ];
  const rows: string[][] = [];
  for (const s of input.scenarios) {
    const r = input.results.get(s.key)!;
    const o = r.get('seal-idms');
    const b = r.get('baseline');
    const cells = (x: Outcome | undefined) =>
      x
        ? x.runs.length
          ? [f0(x.median.rate), f1(x.median.p50), f1(x.median.p99), String(x.runs.reduce((n, run) => n + run.errors, 0)), f1(x.half?.p99)]
          : ['failed', '', '', '', '']
        : ['—', '', '', '', ''];
    const ratio = o?.runs.length && b?.runs.length ? (o.median.rate / b.median.rate).toFixed(2) : '—';
    rows.push([s.key, ...cells(o), ...cells(b), ratio, s.goal ?? '']);
  }
  // Cost per request: statements and CPU of each process group, over all measured runs of the flow.
  const costHeader = [
    'flow',
    'server',
    'stmts/req (pg_stat_statements)',
    'stmts/req (server counter)',
    'CPU ms/req server',
    'of which JS main threads / libuv pool / V8 helpers / kernel',
    'CPU ms/req PostgreSQL',
    'CPU ms/req load gen',
  ];
  const costRows: string[][] = [];
  const f2 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(2));
  for (const s of input.scenarios) {
    for (const [name, o] of input.results.get(s.key)!) {
      if (!o.cost || !o.costOk) continue;
      const per = (x: number | undefined) => (x === undefined ? undefined : x / o.costOk!);
      costRows.push([
        s.key,
        name,
        name === 'baseline' ? '—' : f2(per(o.cost.pgss)),
        name === 'baseline' ? '—' : f2(per(o.cost.counted)),
        f2(per(o.cost.serverMs)),
        [o.cost.split.main, o.cost.split.pool, o.cost.split.v8, o.cost.split.sys].map((x) => f2(per(x))).join(' / '),
        name === 'baseline' ? '—' : f2(per(o.cost.pgMs)),
        f2(per(o.cost.generatorMs)),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const costWidths = costHeader.map((h, i) => Math.max(h.length, ...costRows.map((r) => r[i]!.length)));
  const costLine = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(costWidths[i]!) : c.padStart(costWidths[i]!))).join('  ');
  const table = [line(header), ...rows.map(line), '', costLine(costHeader), ...costRows.map(costLine)].join('\n');

  const md: string[] = [];
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  md.push('# Benchmark run (generated)', '');
  md.push(
    'Generated by `npm run bench`; overwritten by the next run. The analysis (targets, before/after, profiles) is in [../RESULTS.md](../RESULTS.md).',
    '',
  );
  md.push(`Written by \`npm run bench\` (bench/run.ts) on ${new Date().toISOString()}${QUICK ? ' — **BENCH_QUICK smoke run, not a measurement**' : ''}.`, '');
  md.push(`- Machine: ${os.availableParallelism()} CPUs (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}`);
  md.push(`- Node ${process.version}; PostgreSQL ${input.pgVersion} (${input.external ? 'external server' : 'embedded, same machine'})`);
  md.push(
    `- seal-idms: \`serve\` with NODE_ENV=production, IDMS_WORKERS=${WORKERS}; baseline: bare oidc-provider, in-memory adapter, one process (bench/baseline/server.ts)`,
  );
  md.push(
    `- Load: closed loop on loopback from one Node process (bench/load.ts), keep-alive, concurrency ${CONCURRENCY} (logins ${LOGIN_CONCURRENCY}); ${RUNS} runs of ${SECONDS} s per flow and server, interleaved; figures are the median run. "p99 @½ max" is an open-loop run at half the median max rate, latency counted from each request's scheduled start.`,
  );
  md.push(
    `- Everything (load generator, servers, PostgreSQL) shares the same ${os.availableParallelism()} CPUs; the ratio to the baseline is the figure that holds on a noisy machine.`,
  );
  md.push(
    `- Load average (1, 5, 15 min) at the start: ${input.loadAtStart.map((x) => x.toFixed(2)).join(', ')}; at the end: ${input.load.map((x) => x.toFixed(2)).join(', ')}.`,
  );
  md.push(`- Whole run: ${input.elapsed.toFixed(0)} s.`, '');
  md.push('| flow | seal-idms /s | p50 ms | p99 ms | errors | p99 @½ max | baseline /s | p50 ms | p99 ms | errors | p99 @½ max | ours / baseline | target |');
  md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) md.push(`| ${r.join(' | ')} |`);
  md.push('', '## Cost per request', '');
  md.push(
    `Over all measured closed-loop runs. Statements: ${input.pgss ? "pg_stat_statements (every statement PostgreSQL ran in the database, BEGIN/COMMIT and the change feed's once-a-second NOTIFY included)" : 'pg_stat_statements not available on this server'}, and the server's own count (idms_db_statements_total: statements its pools sent). CPU: utime + stime from /proc of seal-idms\' node processes (split by thread: the JavaScript main threads, libuv's pool, which runs argon2id and WebCrypto's signatures, V8's helper threads, which run GC and compilation; and the part of all of them spent in the kernel), ${input.external ? "the PostgreSQL backends connected to the bench's database" : 'the whole embedded PostgreSQL'}, and the load generator's process.`,
    '',
  );
  md.push(
    `| ${costHeader.join(' | ')} |`,
    `|---|---|${costHeader
      .slice(2)
      .map(() => '---:')
      .join('|')}|`,
  );
  for (const r of costRows) md.push(`| ${r.join(' | ')} |`);
  md.push('', '<details><summary>Statements per request of each flow (pg_stat_statements, seal-idms runs)</summary>', '');
  for (const s of input.scenarios) {
    const o = input.results.get(s.key)!.get('seal-idms');
    if (!o?.statements || !o.costOk) continue;
    md.push(`**${s.key}**`, '', '| per request | statement |', '|---:|---|');
    for (const [q, n] of [...o.statements].sort((a, b) => b[1] - a[1]).filter(([, n]) => n / o.costOk! >= 0.01)) {
      md.push(`| ${(n / o.costOk).toFixed(2)} | \`${q.replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, 220)}\` |`);
    }
    md.push('');
  }
  md.push('</details>', '', '## Flows', '');
  for (const s of input.scenarios) {
    const r = input.results.get(s.key)!;
    const runs = [...r]
      .map(([name, o]) => `${name}: ${o.runs.map((x) => x.rate.toFixed(0)).join(', ') || 'failed'}${o.error ? ` (error: ${o.error.slice(0, 200)})` : ''}`)
      .join('; ');
    const samples = [...r].flatMap(([name, o]) =>
      o.runs
        .flatMap((x) => x.errorSamples)
        .slice(0, 2)
        .map((e) => `${name}: ${e}`),
    );
    md.push(`- **${s.key}** — ${s.title}. Runs (/s): ${runs}.${samples.length ? ` Error samples: ${samples.join(' · ')}` : ''}`);
  }
  md.push(
    '',
    '## Peak memory (VmHWM) per process',
    '',
    'RSS counts the pages of mapped files (the node binary above all) in every process that touched them; PSS divides shared pages among the processes sharing them.',
    '',
    '| server | process | peak RSS MB | RSS at end MB | of which file pages MB | PSS at end MB |',
    '|---|---|---:|---:|---:|---:|',
  );
  for (const [name, procs] of input.memory) {
    for (const p of procs.filter((x) => !x.label.startsWith('PostgreSQL')))
      md.push(`| ${name} | ${p.label} | ${p.peakRssMb.toFixed(0)} | ${p.rssMb.toFixed(0)} | ${p.fileRssMb.toFixed(0)} | ${p.pssMb.toFixed(0)} |`);
    const pg = procs.filter((x) => x.label.startsWith('PostgreSQL'));
    if (pg.length) {
      const peak = Math.max(...pg.map((x) => x.peakRssMb));
      const end = Math.max(...pg.map((x) => x.rssMb));
      // A backend's RSS counts the pages of shared_buffers it touched, so the processes do not add up.
      md.push(`| ${name} | PostgreSQL, ${pg.length} processes (largest; includes shared buffers it touched) | ${peak.toFixed(0)} | ${end.toFixed(0)} | | |`);
    }
  }
  if (input.provisioning !== undefined) md.push('', '## Provisioning', '', input.provisioning);
  md.push('');
  const mem = [...input.memory].map(([name, procs]) => {
    const pg = procs.filter((p) => p.label.startsWith('PostgreSQL'));
    const node = procs.filter((p) => !p.label.startsWith('PostgreSQL')).map((p) => `${p.label} ${p.peakRssMb.toFixed(0)} MB`);
    return `${name}: ${node.join(', ')}${pg.length ? `, PostgreSQL processes ≤ ${Math.max(...pg.map((p) => p.peakRssMb)).toFixed(0)} MB each` : ''}`;
  });
  return { table: `${table}\n\npeak RSS — ${mem.join(' · ')}`, markdown: md.join('\n') };
}

type LabelledMemory = ProcessMemory & { label: string };

/** Peak RSS of a server's processes: the one we started, its cluster workers, its embedded PostgreSQL. */
function labelled(root: number): LabelledMemory[] {
  return memoryOf(processTree(root)).map((p) => {
    let label: string;
    if (p.command.includes('postgres')) label = `PostgreSQL ${p.command.replace(/^.*postgres:?\s*/, '').slice(0, 40) || 'postmaster'}`;
    else if (p.pid === root) label = p.command.includes('baseline') ? 'node' : WORKERS > 1 ? 'node primary' : 'node';
    else label = `node worker ${p.pid}`;
    return { ...p, label };
  });
}

await main();
