// The real `seal-idms serve` process: a burst of hostile input does not crash it, SIGTERM drains it (stops accepting,
// finishes in-flight requests, closes the pool, exits 0), and SIGKILL mid-provisioning leaves the old or the new
// mapping, never a mixture (one transaction per Provide_Configuration).
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { userIds } from '../helpers/provisioning.ts';
import { TEST_SECRET } from '../helpers/server.ts';
import { basic, freePort, VAL_SERVER_SECRET } from './support.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MCX = 'mcx.example.org';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  const env = { IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET };
  await cliOk(env, ['client', 'add', 'val-server-1', '--secret', VAL_SERVER_SECRET, '--grant', 'client_credentials']);
  await cliOk(env, ['resource', 'add', 'https://skms.example.org']);
  await cliOk(env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1', '--max-users', '1000000']);
});

afterAll(async () => {
  await database?.drop();
});

type Serve = {
  child: ChildProcess;
  pid: number;
  issuer: string;
  port: number;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: string | null; at: number }>;
};

/** Starts `seal-idms serve` as its own process (through `npx node`, as an operator would) and waits until it listens. */
async function serve(via: 'npx' | 'node'): Promise<Serve> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    NODE_OPTIONS: '',
    IDMS_ISSUER: issuer,
    IDMS_PORT: String(port),
    IDMS_DATABASE_URL: database.url,
    IDMS_SECRET: TEST_SECRET,
    IDMS_WORKERS: '1',
    IDMS_LOG_LEVEL: 'info',
    IDMS_LOG_FORMAT: 'json',
  };
  const [cmd, args] = via === 'npx' ? ['npx', ['node', 'src/main.ts', 'serve']] : [process.execPath, ['src/main.ts', 'serve']];
  const child = spawn(cmd as string, args as string[], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  const deadline = Date.now() + 30_000;
  while (!/listening on/.test(stderr)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`serve did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // The serving process itself (under npx it is npx's child): its JSON log lines carry its pid.
  const pid = Number(/"pid":(\d+)[^\n]*listening on/.exec(stderr)?.[1]);
  if (!pid) throw new Error(`no pid in the log: ${stderr}`);
  return { child, pid, issuer, port, stderr: () => stderr, exited };
}

const token = (issuer: string) =>
  fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic('val-server-1', VAL_SERVER_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&resource=https%3A%2F%2Fskms.example.org',
  });

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => (socket.destroy(), resolve(false)));
    socket.on('error', () => resolve(true));
  });
}

test('a burst of hostile requests does not take the serve process down (no crash, no unhandled rejection)', async () => {
  const s = await serve('node');
  try {
    const junk = () => crypto.randomBytes(crypto.randomInt(1, 400)).toString(['hex', 'base64', 'latin1'][crypto.randomInt(3)] as BufferEncoding);
    const paths = [
      '/token',
      '/token/introspection',
      '/token/revocation',
      '/auth',
      '/me',
      '/session/end',
      '/interaction/x/login',
      '/ss-idms-provisioning/v1/configurations',
    ];
    const statuses: number[] = [];
    for (let i = 0; i < 400; i++) {
      const res = await fetch(`${s.issuer}${paths[i % paths.length]}?${encodeURIComponent(junk())}=${encodeURIComponent(junk())}`, {
        method: i % 3 ? 'POST' : 'GET',
        headers: {
          'content-type': ['application/x-www-form-urlencoded', 'application/json', 'text/plain'][i % 3]!,
          authorization: i % 2 ? `Bearer ${junk().replace(/[^\x21-\x7e]/g, '')}` : basic('val-server-1', junk()),
        },
        body: i % 3 ? junk() : undefined,
        redirect: 'manual',
      });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(statuses.filter((st) => st >= 500)).toEqual([]);
    expect((await token(s.issuer)).status).toBe(200);
    expect(s.child.exitCode).toBeNull();
    expect(s.stderr()).not.toMatch(/Unhandled|uncaught|"level":(50|60)/i);
  } finally {
    s.child.kill('SIGKILL');
    await s.exited;
  }
}, 60_000);

test('SIGTERM: stops accepting, finishes the in-flight request, closes the pool, exits 0', async () => {
  const s = await serve('npx');
  try {
    await drainsOnSigterm(s);
  } finally {
    if (s.child.exitCode === null) process.kill(s.pid, 'SIGKILL');
  }
}, 60_000);

async function drainsOnSigterm(s: Serve): Promise<void> {
  expect((await token(s.issuer)).status).toBe(200);

  // An in-flight request: headers and half of the body sent, the rest comes after the signal.
  const body = 'grant_type=client_credentials&resource=https%3A%2F%2Fskms.example.org';
  const socket = net.connect(s.port, '127.0.0.1');
  let answer = '';
  socket.on('data', (c: Buffer) => (answer += c.toString()));
  // Answered when the JSON body is complete, or when the server closes the connection.
  const answered = new Promise<void>((resolve) => {
    socket.on('data', () => /\r\n\r\n\{.*\}$/s.test(answer) && resolve());
    socket.on('close', () => resolve());
  });
  socket.write(
    `POST /token HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nAuthorization: ${basic('val-server-1', VAL_SERVER_SECRET)}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 20)}`,
  );
  await new Promise((r) => setTimeout(r, 200));

  const signalled = performance.now();
  // To the server process, as a container runtime or systemd does: npm exec does not forward signals to its child
  // (docs/security.md), but it does pass the child's exit code on.
  process.kill(s.pid, 'SIGTERM');
  // Stops accepting: new connections are refused while the in-flight request is still open.
  let stoppedAccepting = false;
  for (let i = 0; i < 100 && !stoppedAccepting; i++) {
    stoppedAccepting = await refused(s.port);
    if (!stoppedAccepting) await new Promise((r) => setTimeout(r, 20));
  }
  expect(stoppedAccepting).toBe(true);
  expect(s.child.exitCode).toBeNull();

  socket.write(body.slice(20));
  await answered;
  socket.end();
  if (!/^HTTP\/1\.1 200/.test(answer)) throw new Error(`in-flight request lost; answer=${JSON.stringify(answer)}; log:\n${s.stderr()}`);
  expect(answer).toMatch(/"access_token"/);

  const exit = await s.exited;
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  // It left on its own, well before the 10 s fallback that cuts lingering HTTP connections and the 30 s after which
  // idle pool connections would time out: the pool was closed (its sockets would hold the event loop open).
  expect(exit.at - signalled).toBeLessThan(5000);
  console.info(`SIGTERM drain: exit code 0, ${(exit.at - signalled).toFixed(0)} ms after the signal`);
  expect(s.stderr()).toMatch(/SIGTERM: finishing in-flight requests and shutting down/);
}

test('SIGKILL in the middle of Provide_Configuration leaves the old or the new mapping, never a mixture', async () => {
  const size = 30_000;
  const stored = async () =>
    (await database.db('val_service_users').where({ val_service_id: 'mcptt-1', provisioned_by: MCX }).orderBy('val_user_id').pluck('val_user_id')) as string[];
  const provide = async (issuer: string, users: string[]) => {
    const { access_token } = (await (
      await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: basic('mcx', 'mcx-secret-0123456789'), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: '3gpp:seal:idm:provisioning', resource: `${issuer}/ss-idms-provisioning/v1` }),
      })
    ).json()) as { access_token: string };
    return fetch(`${issuer}/ss-idms-provisioning/v1/configurations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ requesterIdentity: MCX, valServiceInfos: [{ valServiceId: 'mcptt-1', valUserIds: users }] }),
    });
  };

  // Old mapping, and how long one full replacement takes.
  let s = await serve('node');
  let committed = userIds('gen0-', size);
  expect((await provide(s.issuer, committed)).status).toBe(200);
  const started = performance.now();
  const next = userIds('gen1-', size);
  expect((await provide(s.issuer, next)).status).toBe(200);
  const duration = performance.now() - started;
  committed = next;
  expect(await stored()).toEqual([...committed].sort());

  // Kill the server the moment its Provide_Configuration transaction is open in PostgreSQL (seen from another
  // session), and once after it answered, as a control that the new mapping does get stored.
  const inTransaction = async () =>
    ((
      await database.db.raw(`select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
       and xact_start is not null and query ilike '%val_service_users%'`)
    ).rows[0].n as number) > 0;
  const outcomes: string[] = [];
  for (const [round, when] of [
    [2, 'in transaction'],
    [3, 'in transaction'],
    [4, 'in transaction'],
    [5, 'after 200'],
  ] as const) {
    const candidate = userIds(`gen${round}-`, size);
    const request = provide(s.issuer, candidate).then(
      (r) => r.status,
      () => 'connection lost',
    );
    if (when === 'in transaction') {
      const deadline = performance.now() + 10 * duration + 5000;
      while (!(await inTransaction()) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    } else {
      await request;
    }
    s.child.kill('SIGKILL');
    await s.exited;
    const status = await request;
    const now = await stored();
    const isOld = JSON.stringify(now) === JSON.stringify([...committed].sort());
    const isNew = JSON.stringify(now) === JSON.stringify([...candidate].sort());
    outcomes.push(`${when}: ${status} → ${isOld ? 'old' : isNew ? 'new' : `MIXED (${now.length} rows)`}`);
    expect({ round, mixed: !isOld && !isNew }).toEqual({ round, mixed: false });
    if (status === 200) expect(isNew).toBe(true);
    if (isNew) committed = candidate;
    s = await serve('node');
  }
  expect(outcomes.filter((o) => o.startsWith('in transaction')).some((o) => o.endsWith('old'))).toBe(true);
  expect(outcomes.at(-1)).toBe('after 200: 200 → new');
  console.info(`SIGKILL during Provide_Configuration of ${size} VAL users (${duration.toFixed(0)} ms each): ${outcomes.join(', ')}`);
  s.child.kill('SIGKILL');
  await s.exited;
}, 120_000);
