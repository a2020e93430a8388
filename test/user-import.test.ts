// `user import`: CSV validation and summary, batched upserts, resume after interruption or a crash, and logins
// with argon2/bcrypt/PBKDF2 hashes migrated from another IdP that become argon2id at the first login.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { hash as argon2Hash } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.ts';
import { cli, cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { importUsers, type ImportProgress } from '../src/users/import.ts';
import { progressReporter } from '../src/cli/import.ts';
import { verifyPassword } from '../src/users/passwords.ts';
import { needsRehash } from '../src/users/hash-formats.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const REDIRECT = 'http://127.0.0.1:8127/cb';
const OUR_ARGON2 = '$argon2id$v=19$m=19456,t=2,p=1$';

let database: TestDatabase;
let server: TestServer;
let dir: string;

const csvField = (v: string) => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
const csv = (rows: string[][]) => rows.map((r) => r.map(csvField).join(',')).join('\n') + '\n';
const hashOf = async (id: string) => (await database.db('val_users').where({ val_user_id: id }).first())?.password_hash as string | undefined;
const ab64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '').replace(/\+/g, '.');

// Hashes as other systems write them; the first three are published reference values.
const MIGRATED: { id: string; password: string; hash: () => Promise<string>; rehash: boolean }[] = [
  // argon2 reference implementation README: `echo -n password | argon2 somesalt -t 2 -m 16 -p 4 -l 24` (-i / -id).
  { id: 'mig-argon2i', password: 'password', hash: async () => '$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG', rehash: true },
  {
    id: 'mig-argon2id-strong',
    password: 'password',
    hash: async () => '$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo',
    rehash: false,
  },
  // PHP manual, password_verify(): PHP writes bcrypt as $2y$.
  { id: 'mig-bcrypt-2y', password: 'rasmuslerdorf', hash: async () => '$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a', rehash: true },
  // passlib documentation, pbkdf2_sha256.hash("toomanysecrets"): adapted base64.
  {
    id: 'mig-pbkdf2-sha256',
    password: 'toomanysecrets',
    hash: async () => '$pbkdf2-sha256$29000$N2YMIWQsBWBMae09x1jrPQ$1t8iyB2A.WF/Z5JZv.lfCIhXXN33N23OSgQYThBYRfk',
    rehash: true,
  },
  { id: 'mig-argon2id-weak', password: 'weak-argon2-pw', hash: () => argon2Hash('weak-argon2-pw', { memoryCost: 4096, timeCost: 1 }), rehash: true }, // argon2id by default
  { id: 'mig-bcrypt-2b', password: 'bcrypt-2b-pass', hash: async () => bcrypt.hashSync('bcrypt-2b-pass', 6), rehash: true },
  { id: 'mig-bcrypt-2a', password: 'bcrypt-2a-pass', hash: async () => bcrypt.hashSync('bcrypt-2a-pass', 6).replace(/^\$2b\$/, '$2a$'), rehash: true },
  {
    // A Keycloak pbkdf2-sha512 credential (salt and value in standard base64) written in our format.
    id: 'mig-pbkdf2-sha512',
    password: 'keycloak-user-pw',
    hash: async () => {
      const salt = crypto.randomBytes(16);
      const dk = crypto.pbkdf2Sync('keycloak-user-pw', salt, 27500, 64, 'sha512');
      return `$pbkdf2-sha512$27500$${salt.toString('base64')}$${dk.toString('base64')}`;
    },
    rehash: true,
  },
  {
    id: 'mig-pbkdf2-sha256-gen',
    password: 'generated-pbkdf2',
    hash: async () => {
      const salt = crypto.randomBytes(12);
      return `$pbkdf2-sha256$1000$${ab64(salt)}$${ab64(crypto.pbkdf2Sync('generated-pbkdf2', salt, 1000, 32, 'sha256'))}`;
    },
    rehash: true,
  },
];

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-import-'));
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('a CSV with good and bad rows', () => {
  let file: string;
  const rejected: [number, RegExp][] = [];

  beforeAll(async () => {
    await cliOk(server.env, ['user', 'add', 'existing', '--password', 'old-password-1']);
    const rows: string[][] = [['val_user_id', 'password', 'password_hash', 'status', 'services']];
    const bad = (row: string[], reason: RegExp) => {
      rows.push(row);
      rejected.push([rows.length, reason]); // line number = row index + 1 (header is line 1)
    };
    for (let i = 1; i <= 20; i++) {
      const id = `u${String(i).padStart(3, '0')}`;
      rows.push([id, `password-${id}`, '', '', i % 2 ? 'mcptt-1;v2x-7' : '']);
    }
    rows.push(['dis-1', 'password-dis-1', '', 'disabled', '']);
    rows.push(['existing', 'new-password-1', '', '', '']);
    for (const m of MIGRATED) rows.push([m.id, '', await m.hash(), 'active', 'mcptt-1']);
    bad(['short-pw', 'short', '', '', ''], /^password must be 8 to 1024 characters$/);
    bad(['both', 'password-both', '$2b$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234', '', ''], /^both password and password_hash given$/);
    bad(['neither', '', '', '', ''], /^no password or password_hash$/);
    bad(['badstatus', 'password-badstatus', '', 'frozen', ''], /^status must be active or disabled$/);
    bad(['md5', '', '$1$saltsalt$abcdefghijklmnopqrstuv', '', ''], /^unrecognised password_hash/);
    bad(['bcrypt20', '', '$2b$20$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234', '', ''], /^bcrypt cost 20 out of range/);
    bad(['bad id', 'password-bad-id', '', '', ''], /^invalid VAL user ID: must be printable characters without spaces/);
    bad(['u001', 'password-again', '', '', ''], /^duplicate VAL user ID u001/);
    bad(['badsvc', 'password-badsvc', '', '', 'x'.repeat(300)], /^invalid VAL service ID/);
    const text = csv(rows);
    // A record with one field too many: malformed, rejected, and the import goes on.
    const lines = text.split('\n');
    lines.splice(rows.length, 0, 'extra,password-extra,,,,one-too-many');
    rejected.push([rows.length + 1, /^malformed CSV record \(CSV_RECORD_INCONSISTENT_COLUMNS\)$/]);
    lines.splice(rows.length + 1, 0, 'after-malformed,password-after,,,');
    file = path.join(dir, 'users.csv');
    await fs.writeFile(file, lines.join('\n'));
  });

  test('prints a summary of created, updated and rejected rows with the line and reason of each rejection', async () => {
    const r = await cli(server.env, ['user', 'import', file, '--batch-size', '7']);
    expect(r.code).toBe(0);
    const created = 20 + 1 + MIGRATED.length + 1; // u001-u020, dis-1, migrated users, after-malformed
    expect(r.stdout).toContain(
      `imported users.csv: ${created} created, 1 updated, ${rejected.length} rejected, ${10 * 2 + MIGRATED.length} VAL service mappings added`,
    );
    const reasons = r.stdout.split('\n').filter((l) => l.startsWith('  line '));
    expect(reasons).toHaveLength(rejected.length);
    expect(reasons.map((l) => Number(/line (\d+)/.exec(l)![1]))).toEqual(rejected.map(([line]) => line)); // in file order
    for (const [line, reason] of rejected) {
      const shown = reasons.find((l) => l.startsWith(`  line ${line}: `));
      expect(shown?.slice(`  line ${line}: `.length)).toMatch(reason);
    }
    // Plain progress lines on a non-terminal, ending at 100 %.
    expect(r.stderr).toMatch(/progress: 100\.0% \(line \d+\), \d+ rows, [\d,]+ rows\/s, ETA 0s, 10 rejected\n$/);
    // Nothing secret in what the command printed.
    expect(r.stdout + r.stderr).not.toMatch(/password-u0|password-both|abcdefghijklmnopqrstuu|saltsalt/);
  });

  test('stores argon2id hashes for passwords, imported hashes as they are, statuses and service mappings', async () => {
    const u001 = (await hashOf('u001'))!;
    expect(u001.startsWith(OUR_ARGON2)).toBe(true);
    expect(await verifyPassword(u001, 'password-u001')).toBe(true);
    expect(await verifyPassword((await hashOf('existing'))!, 'new-password-1')).toBe(true);
    for (const m of MIGRATED.slice(0, 4)) expect(await hashOf(m.id)).toBe(await m.hash());
    const statuses = Object.fromEntries(
      (await database.db('val_users').whereIn('val_user_id', ['u002', 'dis-1']).select('val_user_id', 'status')).map((r) => [r.val_user_id, r.status]),
    );
    expect(statuses).toEqual({ u002: 'active', 'dis-1': 'disabled' });
    for (const id of ['short-pw', 'both', 'neither', 'badstatus', 'md5', 'bcrypt20', 'badsvc', 'extra']) expect(await hashOf(id)).toBeUndefined();
    const services = await database.db('val_service_users').where({ val_user_id: 'u003' }).orderBy('val_service_id').pluck('val_service_id');
    expect(services).toEqual(['mcptt-1', 'v2x-7']);
    expect(await database.db('val_service_users').where({ val_user_id: 'u002' }).count({ n: '*' }).first()).toEqual({ n: 0 });
    const audit = await database.db('audit_events').where({ action: 'user.import' }).first();
    expect(audit).toMatchObject({ actor: 'cli', subject: 'users.csv', result: 'success' });
  });

  test('the same file again is recognised as imported; --restart imports it again as updates', async () => {
    const before = await hashOf('u005');
    const again = await cliOk(server.env, ['user', 'import', file]);
    expect(again).toMatch(/^users\.csv was already imported \(.+\): \d+ created, 1 updated, 10 rejected; --restart imports it again\nrejected rows:\n/);
    expect(await hashOf('u005')).toBe(before);
    const restarted = await cliOk(server.env, ['user', 'import', file, '--restart']);
    expect(restarted).toContain(`imported users.csv: 0 created, ${20 + 1 + 1 + MIGRATED.length + 1} updated, 10 rejected, 0 VAL service mappings added`);
    expect(await hashOf('u005')).not.toBe(before); // a fresh salt: the row was written again
  });

  test('a header without the needed columns, an unknown column or a missing file stops with one line', async () => {
    const noPassword = path.join(dir, 'no-password.csv');
    await fs.writeFile(noPassword, 'val_user_id,status\nx,active\n');
    const unknown = path.join(dir, 'unknown.csv');
    await fs.writeFile(unknown, 'val_user_id,pass\nx,y\n');
    const empty = path.join(dir, 'empty.csv');
    await fs.writeFile(empty, '');
    for (const [f, message] of [
      [noPassword, /^seal-idms: no-password\.csv: the header must name val_user_id and password or password_hash/],
      [unknown, /^seal-idms: unknown\.csv: unknown column "pass"/],
      [empty, /^seal-idms: empty\.csv: empty file/],
      [path.join(dir, 'nope.csv'), /^seal-idms: cannot read .*nope\.csv: ENOENT/],
    ] as const) {
      const r = await cli(server.env, ['user', 'import', f]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('interruption and resume', () => {
  async function plainCsv(name: string, count: number, badEvery = 0): Promise<string> {
    const rows = [['val_user_id', 'password']];
    for (let i = 1; i <= count; i++) rows.push([`${name}-${i}`, badEvery && i % badEvery === 0 ? 'short' : `pw-${name}-${i}-secret`]);
    const file = path.join(dir, `${name}.csv`);
    await fs.writeFile(file, csv(rows));
    return file;
  }

  test('an interrupted import commits whole batches and a rerun resumes after the last one', async () => {
    const file = await plainCsv('intr', 60, 9); // rows 9, 18, … are rejected
    const controller = new AbortController();
    const first = await importUsers(database.db, file, { batchSize: 10, signal: controller.signal, onProgress: () => controller.abort() });
    expect(first.outcome).toBe('interrupted');
    // The batch in flight when the signal came is committed too; the one being read is dropped.
    expect([11, 21]).toContain(first.lastLine);
    const committed = await database.db('val_users').where('val_user_id', 'like', 'intr-%').select('val_user_id', 'password_hash');
    const expectedFirst = Array.from({ length: first.lastLine - 1 }, (_, i) => i + 1).filter((i) => i % 9 !== 0);
    expect(committed.map((r) => r.val_user_id).sort()).toEqual(expectedFirst.map((i) => `intr-${i}`).sort());

    const progress: ImportProgress[] = [];
    const second = await importUsers(database.db, file, { batchSize: 10, onProgress: (p) => progress.push(p) });
    expect(second).toMatchObject({ outcome: 'completed', resumedAfterLine: first.lastLine, lastLine: 61, created: 54, updated: 0, rejected: 6 });
    // Rows of the first run were neither hashed nor written again: same hashes, and this run counted only the rest.
    for (const row of committed) expect(await hashOf(row.val_user_id)).toBe(row.password_hash);
    expect(progress.at(-1)!.records).toBe(61 - first.lastLine);
    expect(progress.at(-1)!.resumedBytes).toBeGreaterThan(0);
    expect(second.rejections.map((r) => r.line)).toEqual([10, 19, 28, 37, 46, 55]);
  });

  test('a killed import (SIGKILL mid-way) resumes from its checkpoint when run again', async () => {
    const file = await plainCsv('crash', 200);
    const sha256 = crypto
      .createHash('sha256')
      .update(await fs.readFile(file))
      .digest('hex');
    const env = { PATH: process.env.PATH, IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET };
    const child = spawn(process.execPath, ['src/main.ts', 'user', 'import', file, '--batch-size', '20'], { cwd: ROOT, env, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    let killedAt: { lines_done: number; finished_at: Date | null } | undefined;
    for (const until = Date.now() + 30_000; Date.now() < until;) {
      const cp = await database.db('user_imports').where({ file_sha256: sha256 }).first();
      if (cp && Number(cp.lines_done) >= 41) {
        child.kill('SIGKILL');
        killedAt = cp;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    await exited;
    const cp = await database.db('user_imports').where({ file_sha256: sha256 }).first();
    expect(killedAt?.finished_at).toBeNull();
    expect(cp.finished_at).toBeNull();
    const done = Number(cp.lines_done);
    expect(done).toBeLessThan(201);
    // Exactly the committed lines are in the table: the batch being written at the kill was rolled back.
    expect(await database.db('val_users').where('val_user_id', 'like', 'crash-%').count({ n: '*' }).first()).toEqual({ n: done - 1 });

    const out = await cliOk(server.env, ['user', 'import', file, '--batch-size', '20']);
    expect(out).toContain(`imported crash.csv: 200 created, 0 updated, 0 rejected (resumed after line ${done}; counts include the earlier run)`);
    expect(await database.db('val_users').where('val_user_id', 'like', 'crash-%').count({ n: '*' }).first()).toEqual({ n: 200 });
  });

  test('on a terminal the progress is one redrawn bar with rate and ETA', () => {
    const sink = new PassThrough();
    let out = '';
    sink.on('data', (c: Buffer) => (out += c.toString()));
    const reporter = progressReporter(sink, { tty: true, everyMs: 0 });
    const base = { totalBytes: 1000, resumedBytes: 0, created: 0, updated: 0, rejected: 0 };
    reporter.update({ ...base, line: 101, bytes: 250, records: 100 });
    reporter.update({ ...base, line: 201, bytes: 500, records: 200 });
    reporter.end(true);
    const frames = out.split('\r').filter(Boolean);
    expect(frames).toHaveLength(3);
    expect(frames[0]).toMatch(/^\x1b\[K\[█{8}░{22}\]  25\.0%  100 rows, [\d,]+ rows\/s, ETA \S+$/);
    expect(frames[1]).toMatch(/^\x1b\[K\[█{15}░{15}\]  50\.0%  200 rows/);
    expect(frames[2]).toMatch(/^\x1b\[K\[█{30}\] 100\.0%  200 rows, [\d,]+ rows\/s, ETA 0s\n$/);
  });
});

describe('login with hashes migrated from another IdP', () => {
  let ue: oidc.Configuration;

  beforeAll(async () => {
    ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  });

  async function login(valUserId: string, password: string): Promise<URL> {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(ue, {
      redirect_uri: REDIRECT,
      scope: 'openid 3gpp:seal:val_service',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    const browser = new Browser();
    const page = await browser.openAuthorization(url, REDIRECT);
    if ('callback' in page) throw new Error('expected the login page');
    const result = await browser.submitLogin(page.loginUrl, page.html, valUserId, password, REDIRECT);
    if (!result.callback) return new URL(`${REDIRECT}?login_failed=${result.status}`);
    const tokens = await oidc.authorizationCodeGrant(ue, new URL(result.callback), { pkceCodeVerifier: verifier });
    expect(tokens.claims()!.sub).toBe(valUserId);
    return new URL(result.callback);
  }

  test('a wrong password is refused and leaves the imported hash alone', async () => {
    const before = await hashOf('mig-bcrypt-2y');
    const cb = await login('mig-bcrypt-2y', 'rasmuslerdorf-not');
    expect(cb.searchParams.get('login_failed')).toBe('400');
    expect(await hashOf('mig-bcrypt-2y')).toBe(before);
  });

  test.each(MIGRATED.map((m) => [m.id, m] as const))('%s logs in through the login form; its hash is argon2id afterwards', async (_id, m) => {
    const before = (await hashOf(m.id))!;
    expect(needsRehash(before)).toBe(m.rehash);
    const cb = await login(m.id, m.password);
    expect(cb.searchParams.get('code')).toEqual(expect.any(String));
    const after = (await hashOf(m.id))!;
    if (m.rehash) {
      expect(after.startsWith(OUR_ARGON2)).toBe(true);
      expect(after).not.toBe(before);
    } else {
      expect(after).toBe(before); // argon2id at or above our parameters is kept
    }
    expect(await verifyPassword(after, m.password)).toBe(true);
    // And the next login works against the new hash.
    expect((await login(m.id, m.password)).searchParams.get('code')).toEqual(expect.any(String));
  });
});
