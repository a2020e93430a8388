// Provisioning benchmark: one ss-ipp CreateValServiceConf (TS 29.549) and one Provide_Configuration (seed-named API)
// of 100,000 VAL users each through HTTP (median of 3), and the per-user service lookup of token issuance with
// 1,000,000 mappings stored (p50/p99, and its EXPLAIN plan).
// Standalone: `npx node bench/provisioning.ts` (BENCH_DATABASE_URL, or an embedded PostgreSQL in a temp dir);
// `runProvisioningBench()` returns the figures for `npm run bench`.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/env.ts';
import { deriveSecrets } from '../src/config/secret.ts';
import { openEmbeddedDatabase } from '../src/db/embedded.ts';
import { createKnex } from '../src/db/knex.ts';
import { migrateLatest } from '../src/db/migrate.ts';
import { atRestKeys } from '../src/oidc/at-rest.ts';
import { clientMetadata, registerClient } from '../src/oidc/clients.ts';
import { PROVISIONING_SCOPE, provisioningResource } from '../src/oidc/resources.ts';
import { explainUserStanding, insertValServer, servicesOfUser } from '../src/provisioning/store.ts';
import { listen } from '../src/http/listener.ts';
import { createIdms } from '../src/server.ts';

export type ProvisioningBenchOptions = {
  /** A PostgreSQL server to create a scratch database in; default BENCH_DATABASE_URL, else an embedded one. */
  databaseUrl?: string;
  users?: number;
  runs?: number;
  mappings?: number;
  lookups?: number;
  log?: (line: string) => void;
};

export type ProvisioningBenchResult = {
  database: string;
  users: number;
  /** Wall time of each Provide_Configuration call (HTTP request to response), each into a fresh VAL service. */
  provideSeconds: number[];
  provideMedianSeconds: number;
  /** One replace of a stored set of `users` by one that overlaps it by half (delete + insert of the difference). */
  replaceSeconds: number;
  /** Wall time of each ss-ipp POST /configurations with `users` idList entries (HTTP request to 201), each into a fresh VAL service. */
  createSeconds: number[];
  createMedianSeconds: number;
  mappings: number;
  lookups: number;
  lookupP50Ms: number;
  lookupP99Ms: number;
  explain: string;
  indexScan: boolean;
};

const REQUESTER = 'bench-val-server';
const SECRET = 'bench-val-server-secret-0123456789';

export async function runProvisioningBench(options: ProvisioningBenchOptions = {}): Promise<ProvisioningBenchResult> {
  const users = options.users ?? 100_000;
  const runs = options.runs ?? 3;
  const mappings = options.mappings ?? 1_000_000;
  const lookups = options.lookups ?? 10_000;
  const log = options.log ?? (() => {});
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const { url, label } = await benchDatabase(options.databaseUrl ?? process.env.BENCH_DATABASE_URL, cleanups);
    const db = createKnex(url, { max: 10 });
    cleanups.unshift(() => db.destroy());
    await migrateLatest(db);
    const pgVersion = String((await db.raw('show server_version')).rows[0].server_version);

    const listener = http.createServer();
    const { port } = await listen(listener, 0, '127.0.0.1');
    const issuer = `http://127.0.0.1:${port}`;
    const idmsSecret = crypto.randomBytes(32).toString('base64url');
    const config = loadConfig({ IDMS_ISSUER: issuer, IDMS_DATABASE_URL: url, IDMS_SECRET: idmsSecret, IDMS_LOG_LEVEL: 'warn' });
    const idms = await createIdms({ config, db, secrets: deriveSecrets(idmsSecret), log: () => {} });
    listener.on('request', idms.app.callback());
    cleanups.unshift(async () => {
      await idms.close();
      listener.closeAllConnections();
      await new Promise<void>((r) => listener.close(() => r()));
    });

    const services = Array.from({ length: runs + 1 }, (_, i) => `bench-svc-${i}`);
    const ippServices = Array.from({ length: runs }, (_, i) => `bench-ipp-${i}`);
    await registerClient(
      db,
      idms.provider(),
      clientMetadata({ clientId: REQUESTER, secret: SECRET, public: false, redirectUris: [], grants: ['client_credentials'], scope: PROVISIONING_SCOPE }),
      atRestKeys(deriveSecrets(idmsSecret)),
    );
    await insertValServer(db, { requesterIdentity: REQUESTER, clientId: REQUESTER, allowedServiceIds: [...services, ...ippServices] });
    const token = await provisioningToken(issuer, provisioningResource(config));
    // TS 29.549's client: client_credentials with no scope and no resource; the S-IdMS picks ss-ipp as the audience.
    const ippToken = await provisioningToken(issuer);

    const ids = (from: number) => Array.from({ length: users }, (_, i) => `sip:bench-user-${String(from + i).padStart(8, '0')}@example.org`);
    const provideSeconds: number[] = [];
    for (let r = 0; r < runs; r++) {
      const seconds = await provide(issuer, token, services[r]!, ids(r * users));
      provideSeconds.push(seconds);
      log(`Provide_Configuration of ${users} users into ${services[r]}: ${seconds.toFixed(2)} s`);
    }
    const replaceSeconds = await provide(issuer, token, services[0]!, ids(users / 2));
    log(`replace of ${users} users by a half-overlapping set: ${replaceSeconds.toFixed(2)} s`);
    const createSeconds: number[] = [];
    for (let r = 0; r < runs; r++) {
      const seconds = await createConf(config.apiRoot, ippToken, ippServices[r]!, ids((runs + r) * users));
      createSeconds.push(seconds);
      log(`ss-ipp CreateValServiceConf of ${users} idList entries into ${ippServices[r]}: ${seconds.toFixed(2)} s`);
    }

    // Fill up to `mappings` rows as the operator's own provisioning would: users with five services each.
    const present = ((await db('val_service_users').count({ n: '*' }).first()) as { n: number }).n;
    if (mappings > present) {
      await db.raw(
        `insert into val_service_users (val_service_id, val_user_id, provisioned_by)
         select 'fill-svc-' || (g % 5), 'sip:fill-user-' || lpad((g / 5)::text, 8, '0') || '@example.org', 'admin'
         from generate_series(0, ? - 1) as g`,
        [mappings - present],
      );
    }
    await db.raw('analyze val_service_users');
    const stored = ((await db('val_service_users').count({ n: '*' }).first()) as { n: number }).n;
    log(`${stored} mappings stored`);

    // Token issuance looks up one user at a time: time exactly that call, for random users.
    // Provisioned users: the fill users, and the bench users still provisioned after the replace (from users/2 on).
    const fillUsers = Math.floor((mappings - present) / 5);
    const benchUsers = users * runs - users / 2;
    const sample = () => {
      const n = crypto.randomInt(fillUsers + benchUsers);
      return n < fillUsers
        ? `sip:fill-user-${String(n).padStart(8, '0')}@example.org`
        : `sip:bench-user-${String(n - fillUsers + users / 2).padStart(8, '0')}@example.org`;
    };
    for (let i = 0; i < 200; i++) await servicesOfUser(db, sample()); // warm the pool and the cache
    const times: number[] = [];
    for (let i = 0; i < lookups; i++) {
      const user = sample();
      const t0 = process.hrtime.bigint();
      const found = await servicesOfUser(db, user);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (found.length === 0) throw new Error(`lookup of ${user} found no service`);
    }
    times.sort((a, b) => a - b);
    const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!;

    const plan = await explainUserStanding(db, sample());
    return {
      database: `${label}, PostgreSQL ${pgVersion}`,
      users,
      provideSeconds,
      provideMedianSeconds: median(provideSeconds),
      replaceSeconds,
      createSeconds,
      createMedianSeconds: median(createSeconds),
      mappings: stored,
      lookups,
      lookupP50Ms: pct(50),
      lookupP99Ms: pct(99),
      explain: plan,
      // Index (Only) Scan, or a Bitmap Index Scan where the planner expects several rows: the user index either way.
      indexScan: /Index (Only )?Scan (using|on) val_service_users_user_idx/.test(plan),
    };
  } finally {
    for (const cleanup of cleanups) await cleanup().catch((err: unknown) => log(`cleanup failed: ${String(err)}`));
  }
}

/** A client_credentials token for the seed-named API (`resource`), or with no parameter at all for ss-ipp. */
async function provisioningToken(issuer: string, resource?: string): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${REQUESTER}:${SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(resource ? { resource, scope: PROVISIONING_SCOPE } : {}) }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`token request failed: ${JSON.stringify(body)}`);
  return body.access_token;
}

async function provide(issuer: string, token: string, valServiceId: string, valUserIds: string[]): Promise<number> {
  const body = JSON.stringify({ requesterIdentity: REQUESTER, valServiceInfos: [{ valServiceId, valUserIds }] });
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${issuer}/ss-idms-provisioning/v1/configurations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
  });
  const text = await res.text();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (res.status !== 200) throw new Error(`Provide_Configuration answered ${res.status}: ${text.slice(0, 300)}`);
  return seconds;
}

async function createConf(apiRoot: string, token: string, valServiceId: string, valUserIds: string[]): Promise<number> {
  const body = JSON.stringify({ valServerId: REQUESTER, valSvcConf: [{ valServiceId, idList: valUserIds.map((valUserId) => ({ valUserId })) }] });
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${apiRoot}/ss-ipp/v1/configurations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
  });
  const text = await res.text();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (res.status !== 201) throw new Error(`CreateValServiceConf answered ${res.status}: ${text.slice(0, 300)}`);
  return seconds;
}

async function benchDatabase(serverUrl: string | undefined, cleanups: (() => Promise<void>)[]): Promise<{ url: string; label: string }> {
  if (serverUrl) {
    const name = `idms_bench_prov_${crypto.randomBytes(4).toString('hex')}`;
    const admin = createKnex(serverUrl, { max: 1 });
    await admin.raw(`create database ${name}`).finally(() => admin.destroy());
    cleanups.push(async () => {
      const a = createKnex(serverUrl, { max: 1 });
      await a.raw(`drop database if exists ${name} with (force)`).finally(() => a.destroy());
    });
    const u = new URL(serverUrl);
    u.pathname = `/${name}`;
    return { url: u.toString(), label: 'external' };
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-bench-prov-'));
  await fs.chmod(dir, 0o755); // the postgres OS user (when running as root) must reach pg/ inside
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  const embedded = await openEmbeddedDatabase(dir);
  cleanups.unshift(() => embedded.release());
  return { url: embedded.url, label: 'embedded' };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = await runProvisioningBench({ log: (line) => process.stderr.write(`[bench:provisioning] ${line}\n`) });
  const { explain, ...figures } = result;
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n\nEXPLAIN (ANALYZE) of the per-user lookup:\n${explain}\n`);
}
