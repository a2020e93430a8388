// Issue 17: a PostgreSQL failover under load. Two `serve` processes on a multi-host IDMS_DATABASE_URL, a primary and a
// synchronous standby made with pg_basebackup; the primary's postmaster is SIGKILLed and the standby promoted. No 5xx
// but 503 (with Retry-After), bounded waits, service back within 5 s of the promotion, every acknowledged write on the
// new primary (the test keeps its own ledger), refresh tokens current before the failover work exactly once after, a
// replayed security token is still refused, and the change feed follows the new primary.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as oidc from 'openid-client';
import { exportJWK, generateKeyPair } from 'jose';
import { loadConfig } from '../src/config/env.ts';
import { isDatabaseUnavailable } from '../src/db/availability.ts';
import { createKnex } from '../src/db/knex.ts';
import { mintSecurityToken } from '../src/federation/security-token.ts';
import { Browser } from './helpers/browser.ts';
import { cli, cliOk } from './helpers/cli.ts';
import { JWT_BEARER, TOKEN_EXCHANGE, ACCESS_TOKEN_TYPE, tempDir, writeTemp, federatedClientArgs } from './helpers/federation.ts';
import { pkceAuthorizationRequest } from './helpers/authorize.ts';
import { freePort } from './helpers/net.ts';
import { postgresBinaries, startReplicatedPair, type PgPair } from './helpers/pg-cluster.ts';
import { TEST_SECRET } from './helpers/server.ts';
import { STARTUP_MS, PROPAGATION_MS, SLACK_MS, until } from './helpers/timing.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const ISSUER = 'http://idms.ha.test';
const REDIRECT = 'http://127.0.0.1:8123/cb';
const NEW_REDIRECT = 'http://127.0.0.1:8123/cb-after-failover';
const HOME = 'https://idms.home.example.org';
const MCX = 'mcx-server';
const MCX_SECRET = 'mcx-secret-0123456789';
const PROVISIONING = '/ss-idms-provisioning/v1';
const USERS = ['u0', 'u1', 'u2', 'u3'];
const PASSWORD = 'ha-password-1';

type Instance = { name: string; port: number; child: ChildProcess; output: () => string };
type Outcome = { kind: string; instance: string; status: number; start: number; end: number; retryAfter: boolean; error?: string };

const bin = postgresBinaries();
let pair: PgPair;
let env: NodeJS.ProcessEnv;
const instances: Instance[] = [];
let ue: oidc.Configuration;
let home: { kid: string; key: crypto.KeyObject };

function serve(name: string, url: string): Promise<Instance> {
  return freePort().then(async (port) => {
    const child = spawn(process.execPath, ['src/main.ts', 'serve'], {
      cwd: ROOT,
      env: { ...env, IDMS_DATABASE_URL: url, IDMS_PORT: String(port), IDMS_LOG_LEVEL: 'warn', NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c));
    child.stderr!.on('data', (c: Buffer) => (output += c));
    const instance = { name, port, child, output: () => output };
    instances.push(instance);
    await until(
      `${name} ready`,
      () =>
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        ),
      STARTUP_MS,
      () => output,
    );
    return instance;
  });
}

const at = (instance: Instance, url: string | URL) => {
  const u = new URL(url);
  return new URL(u.pathname + u.search, `http://127.0.0.1:${instance.port}`).href;
};

beforeAll(
  async () => {
    if (!bin) throw new Error('no PostgreSQL binaries with pg_basebackup (install the postgresql package; .ci/run does)');
    pair = await startReplicatedPair(bin, ['idms']);
    env = {
      ...process.env,
      IDMS_ISSUER: ISSUER,
      IDMS_SECRET: TEST_SECRET,
      IDMS_WORKERS: '1',
      IDMS_DATABASE_URL: `${pair.url('idms')}?target_session_attrs=read-write`,
    };
    delete env.NODE_ENV;
    // A: primary first. B: a host that is down first (start-up must pick the next one), then the same two.
    const dead = await freePort();
    await serve('A', env.IDMS_DATABASE_URL!);
    await serve('B', `postgres://postgres@127.0.0.1:${dead},${pair.hosts}/idms`);

    for (const u of USERS) await cliOk(env, ['user', 'add', u, '--password', PASSWORD]);
    await cliOk(env, ['service', 'grant', 'mcptt-1', ...USERS, 'remote-1', '--allow-unknown']);
    await cliOk(env, federatedClientArgs('val-ue', REDIRECT));
    await cliOk(env, ['client', 'add', 'val-web', '--public', '--redirect-uri', REDIRECT]);
    await cliOk(env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', MCX_SECRET, '--services', 'mcptt-1']);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    home = { kid: 'home-1', key: crypto.createPrivateKey({ key: (await exportJWK(privateKey)) as crypto.JsonWebKey, format: 'jwk' }) };
    const jwks = { keys: [{ ...(await exportJWK(crypto.createPublicKey(home.key))), kid: home.kid, use: 'sig' }] };
    await cliOk(env, ['partner', 'add', HOME, '--jwks', writeTemp(tempDir(), 'home.jwks.json', JSON.stringify(jwks))]);
    const fetchA: oidc.CustomFetch = (url, options) => fetch(at(instances[0]!, url), options as RequestInit);
    ue = await oidc.discovery(new URL(ISSUER), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: fetchA });
  },
  STARTUP_MS * 2 + 30_000,
);

afterAll(async () => {
  for (const i of instances) if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGKILL');
  await pair?.close();
});

test('IDMS_DATABASE_URL in the libpq multi-host form is checked at start-up, one line per mistake', () => {
  const check = (url: string, read?: string) => {
    try {
      loadConfig({ IDMS_DATABASE_URL: url, ...(read ? { IDMS_DATABASE_READ_URL: read } : {}) });
      return 'ok';
    } catch (err) {
      return (err as Error).message;
    }
  };
  expect(check('postgres://u:p%40ss@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=read-write')).toBe('ok');
  expect(check('postgres://u@h1,h2/db')).toBe('ok');
  expect(check('postgres://u@h1:5432,h2:54x/db')).toBe('invalid IDMS_DATABASE_URL: host 2 of 2 ("h2:54x") is not host[:port]');
  expect(check('postgres://u@h1:5432,h2:70000/db')).toBe('invalid IDMS_DATABASE_URL: host 2 of 2 ("h2:70000") has an invalid port (1-65535)');
  expect(check('postgres://u@h1:5432,,h3/db')).toBe('invalid IDMS_DATABASE_URL: host 2 of 3 ("") has no host name');
  expect(check('postgres://u@h1,h2/db?target_session_attrs=read-mostly')).toMatch(
    /^invalid IDMS_DATABASE_URL: target_session_attrs must be one of any, read-write, primary/,
  );
  expect(check('postgres://u@h1,h2/db?target_session_attrs=any')).toMatch(
    /^invalid IDMS_DATABASE_URL: target_session_attrs=any with several hosts could keep a standby after a failover/,
  );
  expect(check('postgres://u@h1,h2/db?target_session_attrs=standby')).toMatch(
    /^invalid IDMS_DATABASE_URL: target_session_attrs=standby cannot be the primary database/,
  );
  expect(check('mysql://h1/db')).toMatch(/^invalid IDMS_DATABASE_URL: must be a postgres:\/\/ URL/);
  expect(check('postgres://u@h1/db', 'postgres://u@r1:5432,r2:5432/db?target_session_attrs=prefer-standby')).toBe('ok');
  expect(check('postgres://u@h1/db', 'postgres://u@r1:5432,r2:x/db')).toBe('invalid IDMS_DATABASE_READ_URL: host 2 of 2 ("r2:x") is not host[:port]');
  // The password never appears in a message.
  expect(check('postgres://u:secret-pw@h1:5432,h2:bad/db')).not.toContain('secret-pw');
});

test(
  'a URL whose hosts are all standbys refuses to serve, in one line; a standby listed first is skipped for the primary',
  async () => {
    const standbys = `postgres://postgres@127.0.0.1:${pair.standby.port},127.0.0.1:${pair.standby.port}/idms`;
    const r = await cli({ ...env, IDMS_DATABASE_URL: standbys }, ['user', 'add', 'nobody', '--password', PASSWORD]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `seal-idms: no writable PostgreSQL host in IDMS_DATABASE_URL: 127.0.0.1:${pair.standby.port}: a standby (in recovery); 127.0.0.1:${pair.standby.port}: a standby (in recovery)`,
    ]);
    // `serve` stops at start-up with the same line (before it listens).
    const child = spawn(process.execPath, ['src/main.ts', 'serve'], {
      cwd: ROOT,
      env: { ...env, IDMS_DATABASE_URL: standbys, IDMS_PORT: String(await freePort()), NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('no writable PostgreSQL host in IDMS_DATABASE_URL');

    const standbyFirst = `postgres://postgres@127.0.0.1:${pair.standby.port},127.0.0.1:${pair.primary.port}/idms`;
    expect((await cli({ ...env, IDMS_DATABASE_URL: standbyFirst }, ['audit', 'list', '--limit', '1'])).code).toBe(0);
  },
  STARTUP_MS,
);

test('failover drill: SIGKILL the primary, promote the standby; 503s only, back within 5 s, nothing acknowledged lost', async () => {
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const outcomes: Outcome[] = [];
  let running = true;

  /** Every HTTP answer the load gets, with its timing; a failed fetch (no HTTP answer at all) is status 0. */
  async function observe(kind: string, instance: Instance, fn: () => Promise<Response>): Promise<{ res?: Response; outcome: Outcome }> {
    const start = now();
    try {
      const res = await fn();
      const outcome: Outcome = { kind, instance: instance.name, status: res.status, start, end: now(), retryAfter: res.headers.has('retry-after') };
      outcomes.push(outcome);
      return { res, outcome };
    } catch (err) {
      const outcome: Outcome = { kind, instance: instance.name, status: 0, start, end: now(), retryAfter: false, error: String(err) };
      outcomes.push(outcome);
      return { outcome };
    }
  }
  async function record(kind: string, instance: Instance, fn: () => Promise<Response>): Promise<{ status: number; body: Record<string, unknown> }> {
    const { res, outcome } = await observe(kind, instance, fn);
    if (!res) return { status: 0, body: {} };
    const text = await res.text();
    const body = /json/.test(res.headers.get('content-type') ?? '') ? (JSON.parse(text) as Record<string, unknown>) : {};
    outcome.error = (body.error ?? body.cause) as string | undefined;
    return { status: res.status, body };
  }
  const form = (instance: Instance, p: string, params: Record<string, string>) =>
    fetch(`http://127.0.0.1:${instance.port}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params),
    });
  const pick = (i: number) => instances[i % 2]!;
  const pause = () => new Promise((r) => setTimeout(r, 25));

  /** Interactive login + code redemption at one instance; every HTTP answer is recorded. */
  async function login(instance: Instance, user: string): Promise<{ refresh_token: string; access_token: string } | undefined> {
    const browser = new (class extends Browser {
      override async get(url: string | URL) {
        const { res } = await observe('login', instance, () => super.get(new URL(url).href.startsWith(ISSUER) ? at(instance, url) : url));
        if (!res) throw new Error('no answer');
        return res;
      }
      override async post(url: string | URL, f: Record<string, string>) {
        const { res } = await observe('login', instance, () => super.post(new URL(url).href.startsWith(ISSUER) ? at(instance, url) : url, f));
        if (!res) throw new Error('no answer');
        return res;
      }
    })();
    const req = await pkceAuthorizationRequest(ue, REDIRECT);
    let callback: string;
    try {
      callback = await browser.login(req.url, user, PASSWORD, REDIRECT);
    } catch {
      return undefined;
    }
    const code = new URL(callback).searchParams.get('code');
    if (!code) return undefined;
    const r = await record('code', instance, () =>
      form(instance, '/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: req.verifier, client_id: 'val-ue' }),
    );
    return r.status === 200 ? (r.body as { refresh_token: string; access_token: string }) : undefined;
  }

  // Refresh chains: the ledger's current refresh token of each grant.
  type Chain = { token: string; access: string; doubt: boolean; dead?: string };
  const chains: Chain[] = [];
  for (let i = 0; i < 6; i++) {
    const t = await login(pick(i), USERS[i % USERS.length]!);
    expect(t).toBeDefined();
    chains.push({ token: t!.refresh_token, access: t!.access_token, doubt: false });
  }
  const ledger = { provisioned: [] as string[], revoked: [] as string[], securityTokens: [] as string[], rotations: 0 };
  const wrongRefusals: string[] = [];
  const first = await record('provisioning', pick(0), async () =>
    fetch(at(pick(0), `${ISSUER}${PROVISIONING}/configurations`), {
      method: 'POST',
      headers: { authorization: `Bearer ${await provisioningToken(pick(0))}`, 'content-type': 'application/json' },
      body: JSON.stringify({ requesterIdentity: MCX, valServiceInfos: [{ valServiceId: 'mcptt-1', valUserIds: ['p-0'] }] }),
    }),
  );
  expect(first.status).toBe(200);
  ledger.provisioned.push('p-0');
  const bearers = await Promise.all(instances.map(provisioningToken));

  async function provisioningToken(instance: Instance): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${instance.port}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`mcx:${MCX_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: '3gpp:seal:idm:provisioning', resource: `${ISSUER}${PROVISIONING}` }),
    });
    return ((await res.json()) as { access_token: string }).access_token;
  }

  const loops = [
    // Refresh-token rotation, two workers over the chains (a 503 leaves the rotation in doubt until a retry answers).
    ...[0, 1].map(async (w) => {
      for (let i = w; running; i += 2) {
        const chain = chains[i % chains.length]!;
        if (chain.dead) continue;
        const r = await record('refresh', pick(i), () =>
          form(pick(i), '/token', { grant_type: 'refresh_token', refresh_token: chain.token, client_id: 'val-ue' }),
        );
        if (r.status === 200) {
          Object.assign(chain, { token: r.body.refresh_token as string, access: r.body.access_token as string, doubt: false });
          ledger.rotations++;
        } else if (r.status === 400) {
          // Refused: only allowed when an earlier attempt got no answer and may have committed (then reuse detection revokes).
          if (chain.doubt) chain.dead = 'ambiguous';
          else wrongRefusals.push(`refresh refused without cause: ${JSON.stringify(r.body)}`);
          chain.dead ??= 'refused';
        } else chain.doubt = true;
        await pause();
      }
    }),
    // Provisioning writes: one new VAL user per PATCH.
    (async () => {
      for (let i = 1; running; i++) {
        const id = `p-${i}`;
        const r = await record('provisioning', pick(i), () =>
          fetch(at(pick(i), `${ISSUER}${PROVISIONING}/configurations/mcptt-1`), {
            method: 'PATCH',
            headers: { authorization: `Bearer ${bearers[i % 2]}`, 'content-type': 'application/json' },
            body: JSON.stringify({ add: [id] }),
          }),
        );
        if (r.status === 200) ledger.provisioned.push(id);
        await pause();
      }
    })(),
    // Logins whose refresh token is then revoked (RFC 7009): the revocation is an acknowledged write too.
    (async () => {
      for (let i = 0; running; i++) {
        const t = await login(pick(i), USERS[i % USERS.length]!);
        if (t) {
          const r = await record('revocation', pick(i + 1), () =>
            form(pick(i + 1), '/token/revocation', { token: t.refresh_token, token_type_hint: 'refresh_token', client_id: 'val-ue' }),
          );
          if (r.status === 200) ledger.revoked.push(t.refresh_token);
        }
        await pause();
      }
    })(),
    // Inter-domain: token exchange at home (read path) and JWT bearer with a fresh security token (replay-store insert).
    (async () => {
      for (let i = 0; running; i++) {
        const chain = chains[i % chains.length]!;
        await record('token-exchange', pick(i), () =>
          form(pick(i), '/token', {
            grant_type: TOKEN_EXCHANGE,
            subject_token: chain.access,
            subject_token_type: ACCESS_TOKEN_TYPE,
            audience: HOME,
            client_id: 'val-ue',
          }),
        );
        const { token } = await mintSecurityToken(home, { issuer: HOME, partner: ISSUER, clientId: 'val-ue', valUserId: 'remote-1', lifetime: 60 });
        const r = await record('jwt-bearer', pick(i + 1), () => form(pick(i + 1), '/token', { grant_type: JWT_BEARER, assertion: token, client_id: 'val-ue' }));
        if (r.status === 200) ledger.securityTokens.push(token);
        await pause();
      }
    })(),
  ];

  await new Promise((r) => setTimeout(r, 2000));
  const killedAt = now();
  await pair.crash(pair.primary);
  // During the gap both instances say not ready.
  const notReady = new Set<string>();
  const gapEnd = performance.now() + 1500;
  while (performance.now() < gapEnd) {
    for (const i of instances) if ((await record('readyz', i, () => fetch(`http://127.0.0.1:${i.port}/readyz`))).status === 503) notReady.add(i.name);
    await pause();
  }
  const promoteAt = now();
  await pair.promote(pair.standby);
  const promotedAt = now();
  // Recovered: a write (refresh or provisioning) succeeded at each instance after the promotion.
  const recoveredAt = (name: string) =>
    outcomes.find((o) => o.instance === name && o.start > promotedAt && o.status === 200 && (o.kind === 'refresh' || o.kind === 'provisioning'))?.end;
  await until('both instances serving writes again', () => instances.every((i) => recoveredAt(i.name) !== undefined), 10_000);
  await new Promise((r) => setTimeout(r, 1500));
  running = false;
  await Promise.all(loops);

  // What the clients saw.
  const firstUnavailable = Math.min(...outcomes.filter((o) => o.status === 503 && o.kind !== 'readyz').map((o) => o.end));
  const firstSuccessAfter = Math.min(
    ...outcomes.filter((o) => o.status < 400 && o.status > 0 && o.start > promotedAt && o.kind !== 'readyz').map((o) => o.end),
  );
  const slowest = outcomes.reduce((m, o) => Math.max(m, o.end - o.start), 0);
  const byKind = Object.entries(Object.groupBy(outcomes, (o) => `${o.kind} ${o.status}`))
    .map(([k, v]) => `${k} ×${v!.length}`)
    .sort();
  const live = chains.filter((c) => !c.dead);
  const checked = ledger.provisioned.length + live.length + ledger.revoked.length + ledger.securityTokens.length;
  console.info(
    `failover: primary killed at ${killedAt.toFixed(0)} ms, promote issued at ${promoteAt.toFixed(0)} ms, promoted at ${promotedAt.toFixed(0)} ms; ` +
      `gap (first 503 -> first success after promotion) ${(firstSuccessAfter - firstUnavailable).toFixed(0)} ms; ` +
      `recovered ${instances.map((i) => `${i.name} +${(recoveredAt(i.name)! - promotedAt).toFixed(0)} ms`).join(', ')} after promotion; slowest answer ${slowest.toFixed(0)} ms; ` +
      `acknowledged writes checked: ${checked} (${ledger.provisioned.length} provisioning, ${live.length} current refresh tokens after ${ledger.rotations} rotations, ` +
      `${ledger.revoked.length} revocations, ${ledger.securityTokens.length} replay-store entries; ${chains.filter((c) => c.dead).length} chains lost to an unanswered rotation); ${byKind.join(', ')}`,
  );
  expect(notReady).toEqual(new Set(['A', 'B']));
  expect(outcomes.filter((o) => o.status === 0 || (o.status >= 500 && o.status !== 503))).toEqual([]);
  expect(outcomes.filter((o) => o.status === 503 && o.kind !== 'readyz' && !o.retryAfter)).toEqual([]);
  expect(
    outcomes.filter(
      (o) => o.status === 503 && o.kind !== 'login' && o.kind !== 'readyz' && o.error !== 'temporarily_unavailable' && o.error !== 'TEMPORARILY_UNAVAILABLE',
    ),
  ).toEqual([]);
  expect(Number.isFinite(firstUnavailable)).toBe(true);
  // Bounded waits: nothing hangs past the pool's acquire timeout (3 s) by much, even while PostgreSQL is gone.
  expect(slowest).toBeLessThan(5000);
  for (const i of instances)
    expect({ instance: i.name, recoveredWithin5s: recoveredAt(i.name)! - promotedAt < 5000 }).toEqual({ instance: i.name, recoveredWithin5s: true });
  // Service resumed for good: nothing started 5 s after the promotion was refused for want of a database.
  expect(outcomes.filter((o) => o.start > promotedAt + 5000 && o.status === 503)).toEqual([]);
  expect(wrongRefusals).toEqual([]);

  expect(ledger.provisioned.length).toBeGreaterThan(5);
  expect(ledger.revoked.length).toBeGreaterThan(0);
  expect(ledger.securityTokens.length).toBeGreaterThan(0);
  // The ledger, read back on the new primary and through the interface.
  const stored = new Set(
    (
      await pair.query<{ val_user_id: string }>(
        pair.standby,
        'idms',
        'select val_user_id from val_service_users where val_service_id = $1 and provisioned_by = $2',
        ['mcptt-1', MCX],
      )
    ).map((r) => r.val_user_id),
  );
  expect(ledger.provisioned.filter((id) => !stored.has(id))).toEqual([]);
  expect(live.length).toBeGreaterThanOrEqual(chains.length - 2);
  for (const chain of live) {
    // The current refresh token works exactly once: rotated now, refused as a spent token after.
    const once = await form(pick(0), '/token', { grant_type: 'refresh_token', refresh_token: chain.token, client_id: 'val-ue' });
    expect(once.status).toBe(200);
    const twice = await form(pick(1), '/token', { grant_type: 'refresh_token', refresh_token: chain.token, client_id: 'val-ue' });
    expect({ status: twice.status, error: ((await twice.json()) as { error: string }).error }).toEqual({ status: 400, error: 'invalid_grant' });
  }
  for (const token of ledger.revoked) {
    const r = await form(pick(1), '/token', { grant_type: 'refresh_token', refresh_token: token, client_id: 'val-ue' });
    expect({ status: r.status, error: ((await r.json()) as { error: string }).error }).toEqual({ status: 400, error: 'invalid_grant' });
  }
  for (const token of ledger.securityTokens) {
    const r = await form(pick(0), '/token', { grant_type: JWT_BEARER, assertion: token, client_id: 'val-ue' });
    expect({ status: r.status, error: ((await r.json()) as { error: string }).error }).toEqual({ status: 400, error: 'invalid_grant' });
  }
}, 60_000);

test(
  'change feed on the new primary: a redirect URI changed after the failover is seen by both processes',
  async () => {
    const authorize = async (instance: Instance, redirectUri: string) => {
      const url = new URL(ue.serverMetadata().authorization_endpoint!);
      const challenge = await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier());
      url.search = new URLSearchParams({
        client_id: 'val-web',
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }).toString();
      const res = await fetch(at(instance, url), { redirect: 'manual' });
      await res.text();
      return res.status;
    };
    // Both processes have the client cached (and its old redirect URI) from before.
    for (const i of instances) expect(await authorize(i, REDIRECT)).toBe(303);
    for (const i of instances) expect(await authorize(i, NEW_REDIRECT)).toBe(400);
    // Each process LISTENs on the new primary again (the listener followed the failover; its caches start empty).
    await until(
      'both listeners on the new primary',
      async () => {
        const rows = await pair.query<{ n: number }>(
          pair.standby,
          'idms',
          "select count(distinct client_port)::int as n from pg_stat_activity where query like 'listen idms_cache_ping_%'",
        );
        return rows[0]!.n >= 2;
      },
      PROPAGATION_MS,
    );
    await cliOk(env, ['client', 'remove', 'val-web']);
    await cliOk(env, ['client', 'add', 'val-web', '--public', '--redirect-uri', NEW_REDIRECT]);
    for (const i of instances) {
      await until(
        `${i.name} sees the new redirect URI`,
        async () => (await authorize(i, NEW_REDIRECT)) === 303 && (await authorize(i, REDIRECT)) === 400,
        PROPAGATION_MS,
        () => i.output(),
      );
    }
  },
  PROPAGATION_MS * 2 + 10_000,
);

test('a commit stuck waiting for the synchronous standby is never acknowledged: cancelled (PostgreSQL says success) or timed out, it is a 503', async () => {
  const db = createKnex(`postgres://postgres@127.0.0.1:${pair.standby.port}/idms?statement_timeout=300`, { max: 2 });
  // The cancelled commit must still be waiting when the test finds and cancels it: a longer driver timeout
  // (statement_timeout + 2 s) keeps that window open on a busy machine.
  const patient = createKnex(`postgres://postgres@127.0.0.1:${pair.standby.port}/idms?statement_timeout=8000`, { max: 1 });
  await db.raw('create table if not exists ha_probe (id text primary key)');
  // The promoted standby runs alone; naming a synchronous standby that does not exist makes every commit wait.
  await pair.query(pair.standby, 'idms', "alter system set synchronous_standby_names = 'nobody'");
  await pair.query(pair.standby, 'idms', 'select pg_reload_conf()');
  try {
    // An operator (or a pooler) cancels the wait: PostgreSQL answers the COMMIT with success and only a WARNING.
    const cancelled = patient('ha_probe')
      .insert({ id: 'cancelled' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    await until(
      'commit waiting for the standby',
      async () => (await pair.query(pair.standby, 'idms', "select pid from pg_stat_activity where wait_event = 'SyncRep'")).length > 0,
      8000,
    );
    await pair.query(pair.standby, 'idms', "select pg_cancel_backend(pid) from pg_stat_activity where wait_event = 'SyncRep'");
    const err = await cancelled;
    expect(err).toMatchObject({ code: 'IDMS_SYNC_REP_CANCELLED' });
    expect(isDatabaseUnavailable(err)).toBe(true);
    // It is committed on this server alone: exactly what a failover now would lose, which is why it was not acknowledged.
    expect(await pair.query(pair.standby, 'idms', "select id from ha_probe where id = 'cancelled'")).toEqual([{ id: 'cancelled' }]);

    // Nobody cancels: statement_timeout does not cover a COMMIT's wait, the driver's query timeout (+2 s) does.
    const started = performance.now();
    const timedOut = await db('ha_probe')
      .insert({ id: 'timed-out' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isDatabaseUnavailable(timedOut)).toBe(true);
    expect(performance.now() - started).toBeLessThan(2300 + SLACK_MS);
  } finally {
    await pair.query(pair.standby, 'idms', "alter system set synchronous_standby_names = ''");
    await pair.query(pair.standby, 'idms', 'select pg_reload_conf()');
    await db.destroy();
    await patient.destroy();
  }
});
