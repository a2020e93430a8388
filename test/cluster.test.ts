// IDMS_WORKERS > 1: one port served by node:cluster workers; a killed worker is replaced; SIGTERM drains and stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { TEST_SECRET } from './helpers/server.ts';
import { freePort } from './helpers/net.ts';
import { STARTUP_MS, until } from './helpers/timing.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

let database: TestDatabase;
let primary: ChildProcess;
let output = '';
let port: number;

/** The primary's worker processes (its children that run Node). */
function workers(): number[] {
  const pid = primary.pid!;
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  return children.filter((c) => {
    try {
      return fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('src/main.ts');
    } catch {
      return false;
    }
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const ready = () =>
  fetch(`http://127.0.0.1:${port}/readyz`).then(
    (r) => r.status === 200,
    () => false,
  );

beforeAll(async () => {
  database = await createTestDatabase();
  port = await freePort();
  const env = {
    ...process.env,
    IDMS_DATABASE_URL: database.url,
    IDMS_SECRET: TEST_SECRET,
    IDMS_PORT: String(port),
    IDMS_WORKERS: '2',
    IDMS_LOG_LEVEL: 'info',
    NODE_OPTIONS: '',
  };
  primary = spawn(process.execPath, ['src/main.ts', 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  primary.stdout!.on('data', (c: Buffer) => (output += c));
  primary.stderr!.on('data', (c: Buffer) => (output += c));
  await until(
    'cluster listening',
    () => output.includes('with 2 workers'),
    STARTUP_MS,
    () => output,
  );
}, STARTUP_MS + 10_000);

afterAll(async () => {
  if (primary && primary.exitCode === null && primary.signalCode === null) primary.kill('SIGKILL');
  await database?.drop();
});

test(
  'two workers serve one port; a worker killed with SIGKILL is replaced',
  async () => {
    const before = workers();
    expect(before).toHaveLength(2);
    expect(await ready()).toBe(true);

    process.kill(before[0]!, 'SIGKILL');
    // Wait for the primary's own account of the exit, not only /proc: a reaped worker can vanish from /proc first.
    const replaced = new RegExp(`worker ${before[0]} exited \\(SIGKILL\\); starting a replacement`);
    await until(
      'replacement forked',
      () => replaced.test(output) && workers().length === 2 && !workers().includes(before[0]!),
      STARTUP_MS,
      () => output,
    );
    expect(workers()).toContain(before[1]);
    // The port never went away: the other worker served while the replacement started.
    expect(await ready()).toBe(true);
  },
  STARTUP_MS + 10_000,
);

test(
  'SIGTERM to the primary drains the workers and ends the cluster',
  async () => {
    const running = workers();
    const exited = new Promise<number | null>((resolve) => primary.once('exit', (code) => resolve(code)));
    primary.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('SIGTERM: draining 2 workers');
    for (const pid of running) expect(alive(pid)).toBe(false);
    expect(await ready()).toBe(false);
  },
  STARTUP_MS,
);
