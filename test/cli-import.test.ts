// Admin CLI, user import (issue 15 item 4): a wrong file is one line naming where it failed and what is accepted;
// the summary of a resumed import counts the whole import and this run; progress lines by the clock, final line once.
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { TEST_SECRET } from './helpers/server.ts';
import { cli, cliProcess } from './helpers/cli.ts';
import { lastAudit } from './helpers/federation.ts';

let database: TestDatabase;
let env: NodeJS.ProcessEnv;
let dir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  env = { IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET };
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-cli-import-'));
});

afterAll(async () => {
  await database?.drop();
});

async function plainCsv(name: string, count: number, services = ''): Promise<string> {
  const lines = [services ? 'val_user_id,password,services' : 'val_user_id,password'];
  for (let i = 1; i <= count; i++) lines.push(`${name}-${i},pw-${name}-${i}-secret${services ? `,${services}` : ''}`);
  const file = path.join(dir, `${name}.csv`);
  await fs.writeFile(file, lines.join('\n') + '\n');
  return file;
}

describe('a file that is not the CSV the import reads', () => {
  test('JSON, a spreadsheet, a bad header line: one line with the place and the accepted format, nothing written', async () => {
    const files: [string, string | Buffer, RegExp][] = [
      [
        'users.json',
        JSON.stringify([{ val_user_id: 'alice', password: 'alice-password-1' }]),
        /^seal-idms: users\.json: line 1: the file is JSON, not CSV; user import reads CSV \(UTF-8, comma-separated\) whose header line names val_user_id and password or password_hash/,
      ],
      [
        'users.xlsx',
        Buffer.from('PK\x03\x04\x14\x00\x06\x00', 'latin1'),
        /users\.xlsx: line 1: the file is a ZIP archive \(e\.g\. an \.xlsx spreadsheet\), not CSV; user import reads CSV/,
      ],
      [
        'quoted.csv',
        'val_user_id,"pass"word\nalice,alice-password-1\n',
        /quoted\.csv: line 1: the header line is not valid CSV \(CSV_\w+\); user import reads CSV/,
      ],
      ['columns.csv', 'user,secret\nalice,alice-password-1\n', /columns\.csv: unknown column "user"/],
    ];
    for (const [name, content, message] of files) {
      const file = path.join(dir, name);
      await fs.writeFile(file, content);
      const r = await cli(env, ['user', 'import', file]);
      expect({ name, code: r.code }).toEqual({ name, code: 1 });
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/Cannot read properties|undefined/);
    }
    expect(await database.db('val_users').pluck('val_user_id')).toEqual([]);
    expect(await database.db('user_imports').pluck('file_name')).toEqual([]);
  });
});

describe('resume', () => {
  test('after an interrupted run the summary gives the whole import (users and mappings) and this run, matching the database', async () => {
    const file = await plainCsv('resume', 160, 'svc-a;svc-b');
    const sha = crypto
      .createHash('sha256')
      .update(await fs.readFile(file))
      .digest('hex');
    // The real binary, stopped with Ctrl-C (SIGINT) once two batches are committed: it finishes the batches in flight.
    let child: ChildProcess | undefined;
    const running = cliProcess(env, ['user', 'import', file, '--batch-size', '20'], { onSpawn: (c) => (child = c) });
    for (const until = Date.now() + 60_000; Date.now() < until; await new Promise((r) => setTimeout(r, 25))) {
      const cp = await database.db('user_imports').where({ file_sha256: sha }).first();
      if (cp && Number(cp.lines_done) >= 41) break;
    }
    child!.kill('SIGINT');
    const first = await running;
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/interrupted after line (\d+); run the same command again to resume/);
    const done = Number(/interrupted after line (\d+)/.exec(first.stderr)![1]);
    expect(done).toBeLessThan(161);
    const before = done - 1;

    const second = await cli(env, ['user', 'import', file, '--batch-size', '20']);
    expect(second.code).toBe(0);
    const summary = second.stdout.split('\n')[0]!;
    expect(summary).toContain(
      `imported resume.csv: 160 created, 0 updated, 0 rejected (resumed after line ${done}; counts include the earlier run), 320 VAL service mappings added`,
    );
    expect(summary).toContain(`; this run: ${160 - before} created, 0 updated, 0 rejected, ${2 * (160 - before)} mappings added`);
    const mappings = await database.db('val_service_users').where('val_user_id', 'like', 'resume-%').pluck('val_user_id');
    expect(mappings).toHaveLength(320);
    expect(await lastAudit(database.db, 'user.import')).toMatchObject({
      subject: 'resume.csv',
      details: expect.objectContaining({
        outcome: 'completed',
        created: 160,
        servicesAdded: 320,
        run: { created: 160 - before, updated: 0, rejected: 0, servicesAdded: 2 * (160 - before) },
      }),
    });
  });
});

describe('progress when stderr is not a terminal', () => {
  test('one line every --progress-interval by the clock, even within one long batch, and the final line once', async () => {
    const file = await plainCsv('cadence', 150);
    const arrivals: { at: number; line: string }[] = [];
    let partial = '';
    const started = Date.now();
    const r = await cliProcess(env, ['user', 'import', file, '--workers', '1', '--progress-interval', '0.4'], {
      onStderr(chunk) {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop()!;
        for (const line of lines) if (line.startsWith('progress: ')) arrivals.push({ at: Date.now(), line });
      },
    });
    const elapsed = Date.now() - started;
    expect(r.code).toBe(0);
    // One batch (default size 1000) holds every row: only the clock can make lines before it commits.
    const ticks = arrivals.filter((a) => a.line.includes('reading and hashing the first batch'));
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    // Spaced by the interval (a loaded machine may delay a tick, never bring two together), none missed for long.
    const gaps = ticks.slice(1).map((t, i) => t.at - ticks[i]!.at);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(250);
    expect(Math.max(...gaps)).toBeLessThan(2_000);
    expect(ticks.length).toBeGreaterThanOrEqual(Math.floor(elapsed / 400 / 4));
    const finals = arrivals.filter((a) => a.line.startsWith('progress: 100.0%'));
    expect(finals).toHaveLength(1);
    expect(arrivals.at(-1)!.line).toMatch(/^progress: 100\.0% \(line 151\), 150 rows, [\d,]+ rows\/s, ETA 0s, 0 rejected$/);
  });
});
