// Throughput of `user import` (`npx node bench/user-import.ts`): N users with passwords (hashed in the worker pool)
// and N with pre-hashed passwords, each into a fresh database; prints rows/s and the time 1,000,000 users would take.
// Environment: BENCH_IMPORT_USERS (default 20000), BENCH_IMPORT_PASSWORD_USERS (default: the same),
// BENCH_IMPORT_WORKERS (default: all cores), BENCH_DATABASE_URL (a PostgreSQL server; default: an embedded one).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openEmbeddedDatabase } from '../src/db/embedded.ts';
import { createKnex, type Db } from '../src/db/knex.ts';
import { migrateLatest } from '../src/db/migrate.ts';
import { importUsers } from '../src/users/import.ts';

const USERS = Number(process.env.BENCH_IMPORT_USERS ?? 20_000);
const PASSWORD_USERS = Number(process.env.BENCH_IMPORT_PASSWORD_USERS ?? USERS);
const WORKERS = Number(process.env.BENCH_IMPORT_WORKERS ?? os.availableParallelism());
const MILLION = 1_000_000;

const ab64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '').replace(/\+/g, '.');

async function writeCsv(file: string, count: number, kind: 'password' | 'hash'): Promise<void> {
  const handle = await fs.open(file, 'w');
  const stream = handle.createWriteStream();
  stream.write(kind === 'password' ? 'val_user_id,password,services\n' : 'val_user_id,password_hash,services\n');
  for (let i = 1; i <= count; i++) {
    // Pre-hashed rows are stored as they are, so any well-formed hash measures the same; PBKDF2 is cheap to make.
    const secret =
      kind === 'password'
        ? crypto.randomBytes(12).toString('base64url')
        : `$pbkdf2-sha256$29000$${ab64(crypto.randomBytes(16))}$${ab64(crypto.randomBytes(32))}`;
    if (!stream.write(`user-${kind}-${i},${secret},mcptt-${i % 10}\n`)) await new Promise<void>((r) => stream.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

async function freshDatabase(adminUrl: string, name: string): Promise<{ db: Db; drop(): Promise<void> }> {
  const admin = createKnex(adminUrl, { max: 1 });
  await admin.raw(`drop database if exists ${name}`);
  await admin.raw(`create database ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const db = createKnex(u.toString(), { max: 4 });
  await migrateLatest(db);
  return {
    db,
    async drop() {
      await db.destroy();
      await admin.raw(`drop database if exists ${name}`);
      await admin.destroy();
    },
  };
}

async function measure(adminUrl: string, dir: string, kind: 'password' | 'hash', count: number) {
  const file = path.join(dir, `${kind}.csv`);
  await writeCsv(file, count, kind);
  const { size } = await fs.stat(file);
  const target = await freshDatabase(adminUrl, `idms_bench_import_${kind}`);
  try {
    const started = process.hrtime.bigint();
    const summary = await importUsers(target.db, file, { workers: WORKERS });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (summary.created !== count) throw new Error(`expected ${count} created, got ${summary.created} (${summary.rejected} rejected)`);
    return { kind, count, seconds, rate: count / seconds, megabytes: size / 1e6 };
  } finally {
    await target.drop();
  }
}

const duration = (s: number) => (s < 120 ? `${s.toFixed(0)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-bench-import-'));
  let embedded: Awaited<ReturnType<typeof openEmbeddedDatabase>> | undefined;
  try {
    let adminUrl = process.env.BENCH_DATABASE_URL;
    if (!adminUrl) {
      await fs.chmod(dir, 0o755); // the postgres OS user (when running as root) must reach pg/ inside
      embedded = await openEmbeddedDatabase(path.join(dir, 'data'));
      adminUrl = embedded.url;
    }
    const results = [];
    results.push(await measure(adminUrl, dir, 'hash', USERS));
    if (PASSWORD_USERS > 0) results.push(await measure(adminUrl, dir, 'password', PASSWORD_USERS));

    console.log(
      `user import on ${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.availableParallelism()} (hash workers: ${WORKERS}), PostgreSQL ${embedded ? 'embedded' : 'server'}`,
    );
    console.log('');
    console.log('| rows | users | CSV | time | rows/s | 1,000,000 users |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const r of results) {
      const label = r.kind === 'password' ? 'plain passwords (argon2id in the pool)' : 'pre-hashed (stored as they are)';
      console.log(
        `| ${label} | ${r.count.toLocaleString('en-US')} | ${r.megabytes.toFixed(1)} MB | ${r.seconds.toFixed(1)} s | ${Math.round(r.rate).toLocaleString('en-US')} | ${duration(MILLION / r.rate)} |`,
      );
    }
    const pw = results.find((r) => r.kind === 'password');
    if (pw) {
      const perCore = pw.rate / WORKERS;
      console.log('');
      console.log(
        `argon2id (m=19 MiB, t=2, p=1): ${perCore.toFixed(0)} hashes/s per core; 1,000,000 users with passwords ≈ ${duration(MILLION / perCore / 16)} on 16 cores, ${duration(MILLION / perCore / 64)} on 64.`,
      );
    }
  } finally {
    await embedded?.release();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
