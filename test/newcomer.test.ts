// The README path on an empty data dir: `npm start` (embedded PostgreSQL), the CLI while it runs, a login, a restart.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as oidc from 'openid-client';
import { decodeProtectedHeader } from 'jose';
import { Browser } from './helpers/browser.ts';
import { freePort } from './helpers/net.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const REDIRECT = 'http://127.0.0.1:8124/cb';

let dataDir: string;
let env: NodeJS.ProcessEnv;
let issuer: string;
let server: ChildProcess | undefined;

function npm(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['--silent', ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

async function cliOk(...args: string[]): Promise<string> {
  const r = await npm(['run', 'cli', '--', ...args]);
  if (r.code !== 0) throw new Error(`cli ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function startServer(): Promise<void> {
  // detached: npm → sh → node is one process group we can signal as a whole.
  server = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  server.stdout!.on('data', (c: Buffer) => (output += c));
  server.stderr!.on('data', (c: Buffer) => (output += c));
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    try {
      const res = await fetch(`${issuer}/readyz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (server.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`npm start did not become ready:\n${output}`);
}

async function stopServer(): Promise<void> {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server!.once('exit', r));
  process.kill(-server.pid!, 'SIGTERM');
  await exited;
  // The embedded PostgreSQL this server started must be stopped with it.
  const until = Date.now() + 10_000;
  while (Date.now() < until && (await fs.stat(path.join(dataDir, 'pg', 'postmaster.pid')).catch(() => undefined))) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-newcomer-'));
  await fs.chmod(dataDir, 0o755);
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  env = { ...process.env, IDMS_DATA_DIR: dataDir, IDMS_PORT: String(port), IDMS_ISSUER: issuer, NODE_OPTIONS: '' };
  delete env.IDMS_DATABASE_URL;
  delete env.IDMS_SECRET;
});

afterAll(async () => {
  await stopServer();
  await fs.rm(dataDir, { recursive: true, force: true });
});

test('npm start on an empty data dir, CLI while it runs, login, restart keeps users, clients, keys and refresh tokens', async () => {
  await startServer();
  expect(await fs.readFile(path.join(dataDir, 'secret'), 'utf8')).toMatch(/\S{32,}/);
  expect((await fs.stat(path.join(dataDir, 'pg', 'PG_VERSION'))).isFile()).toBe(true);

  // The CLI attaches to the embedded PostgreSQL the server started.
  const empty = await npm(['run', 'cli', '--', 'user', 'add', 'newcomer', '--password-stdin'], '');
  expect(empty.code).not.toBe(0);
  expect(empty.stderr.trim().split('\n')).toEqual(['seal-idms: password must be 8 to 1024 characters']);
  const added = await npm(['run', 'cli', '--', 'user', 'add', 'newcomer', '--password-stdin'], 'first-password\n');
  expect(added.code).toBe(0);
  await cliOk('user', 'passwd', 'newcomer', '--password', 'newcomer-password');
  await cliOk('service', 'grant', 'mcptt-1', 'newcomer');
  await cliOk('client', 'add', 'first-app', '--public', '--redirect-uri', REDIRECT);

  const client = await oidc.discovery(new URL(issuer), 'first-app', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(client, {
    redirect_uri: REDIRECT,
    scope: 'openid offline_access 3gpp:seal:val_service',
    prompt: 'consent',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const callback = await new Browser().login(url, 'newcomer', 'newcomer-password', REDIRECT);
  const tokens = await oidc.authorizationCodeGrant(client, new URL(callback), { pkceCodeVerifier: verifier, idTokenExpected: true });
  expect(tokens.claims()!.val_service_ids).toEqual(['mcptt-1']);
  const kid = decodeProtectedHeader(tokens.access_token).kid;

  await stopServer();
  await startServer();

  // Same keys, same client, same user, same refresh token after the restart.
  const again = await oidc.discovery(new URL(issuer), 'first-app', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const refreshed = await oidc.refreshTokenGrant(again, tokens.refresh_token!);
  expect(decodeProtectedHeader(refreshed.access_token).kid).toBe(kid);
  expect(refreshed.claims()!.sub).toBe('newcomer');
}, 90_000);
