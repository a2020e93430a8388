// Scale-out: three `serve` processes behind one issuer on one PostgreSQL database act as one S-IdMS, and survive losing one.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import * as oidc from 'openid-client';
import { decodeProtectedHeader } from 'jose';
import { closedLoop, HttpClient } from '../bench/load.ts';
import { basicAuth } from '../bench/flows.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { TEST_SECRET } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { freePort } from './helpers/net.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
// One issuer for all three, as behind a load balancer; the test addresses each process by its own port.
const ISSUER = 'http://idms.scale-out.test';
const REDIRECT = 'http://127.0.0.1:8123/cb';
const PROVISIONING = '/ss-idms-provisioning/v1';

type Instance = { name: string; port: number; child: ChildProcess; output: () => string };

let database: TestDatabase;
let env: NodeJS.ProcessEnv;
let instances: Instance[];

async function startInstance(name: string): Promise<Instance> {
  const port = await freePort();
  const child = spawn(process.execPath, ['src/main.ts', 'serve'], {
    cwd: ROOT,
    env: { ...env, IDMS_PORT: String(port), IDMS_LOG_LEVEL: 'warn', NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c));
  child.stderr!.on('data', (c: Buffer) => (output += c));
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) break;
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return { name, port, child, output: () => output };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not become ready:\n${output}`);
}

/** The issuer's URL rewritten to one process (what the load balancer would pick). */
const at = (port: number, url: string | URL) => {
  const u = new URL(url);
  const target = new URL(u.pathname + u.search, `http://127.0.0.1:${port}`);
  return target.href;
};

/** openid-client's requests go to the chosen process. */
function useInstance(config: oidc.Configuration, instance: Instance): void {
  config[oidc.customFetch] = (url, options) => fetch(at(instance.port, url), options as RequestInit);
}

/** A browser whose requests to the issuer reach one process. */
class BrowserAt extends Browser {
  readonly #port: number;
  constructor(port: number) {
    super();
    this.#port = port;
  }
  override get(url: string | URL): Promise<Response> {
    return super.get(new URL(url).href.startsWith(ISSUER) ? at(this.#port, url) : url);
  }
  override post(url: string | URL, form: Record<string, string>): Promise<Response> {
    return super.post(new URL(url).href.startsWith(ISSUER) ? at(this.#port, url) : url, form);
  }
}

async function discover(clientId: string, secret: string | undefined, instance: Instance): Promise<oidc.Configuration> {
  const fetchAt: oidc.CustomFetch = (url, options) => fetch(at(instance.port, url), options as RequestInit);
  return oidc.discovery(new URL(ISSUER), clientId, secret, secret ? undefined : oidc.None(), {
    execute: [oidc.allowInsecureRequests],
    [oidc.customFetch]: fetchAt,
  });
}

async function clientCredentialsAt(instance: Instance, clientId: string, secret: string, params: Record<string, string> = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${instance.port}/token`, {
    method: 'POST',
    headers: { authorization: basicAuth(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  env = { ...process.env, IDMS_ISSUER: ISSUER, IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET, IDMS_WORKERS: '1' };
  delete env.NODE_ENV;
  // The first start migrates nothing (the test database is migrated) and creates the signing keys; the others find them.
  instances = await Promise.all(['A', 'B', 'C'].map(startInstance));
  await cliOk(env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  await cliOk(env, ['client', 'add', 'skms', '--secret', 'skms-secret-0123456789', '--grant', 'client_credentials']);
  await cliOk(env, ['val-server', 'add', 'mcx-server', '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1,mcdata-2']);
}, 40_000);

afterAll(async () => {
  await Promise.all(
    (instances ?? []).map(
      (i) =>
        new Promise<void>((resolve) => {
          if (i.child.exitCode !== null || i.child.signalCode !== null) return resolve();
          i.child.once('exit', () => resolve());
          i.child.kill('SIGTERM');
        }),
    ),
  );
  await database?.drop();
});

async function provisioningToken(instance: Instance): Promise<string> {
  const res = await clientCredentialsAt(instance, 'mcx', 'mcx-secret-0123456789', {
    scope: '3gpp:seal:idm:provisioning',
    resource: `${ISSUER}${PROVISIONING}`,
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

describe('three instances on one database', () => {
  test('login at A, code redeemed at B, refresh at C', async () => {
    const [a, b, c] = instances as [Instance, Instance, Instance];
    const ue = await discover('val-ue', undefined, a);
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(ue, {
      redirect_uri: REDIRECT,
      scope: 'openid offline_access 3gpp:seal:val_service',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      prompt: 'consent',
    });
    const callback = await new BrowserAt(a.port).login(url, 'alice', 'alice-password-1', REDIRECT);

    useInstance(ue, b);
    const tokens = await oidc.authorizationCodeGrant(ue, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state });
    expect(tokens.claims()).toMatchObject({ iss: ISSUER, sub: 'alice', val_service_ids: ['mcptt-1'] });

    useInstance(ue, c);
    const refreshed = await oidc.refreshTokenGrant(ue, tokens.refresh_token!);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.claims()).toMatchObject({ iss: ISSUER, sub: 'alice' });

    // Rotation is shared too: the spent refresh token is refused at A, which never saw either request.
    useInstance(ue, a);
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('provisioning at A is in the tokens B and C issue', async () => {
    const [a, b, c] = instances as [Instance, Instance, Instance];
    const res = await fetch(`http://127.0.0.1:${a.port}${PROVISIONING}/configurations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await provisioningToken(a)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ requesterIdentity: 'mcx-server', valServiceInfos: [{ valServiceId: 'mcdata-2', valUserIds: ['alice'] }] }),
    });
    expect(res.status).toBe(200);

    for (const instance of [b, c]) {
      const ue = await discover('val-ue', undefined, instance);
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(ue, {
        redirect_uri: REDIRECT,
        scope: 'openid 3gpp:seal:val_service',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const callback = await new BrowserAt(instance.port).login(url, 'alice', 'alice-password-1', REDIRECT);
      const tokens = await oidc.authorizationCodeGrant(ue, new URL(callback), { pkceCodeVerifier: verifier });
      expect(tokens.claims()?.val_service_ids).toEqual(['mcdata-2', 'mcptt-1']);
    }
  });

  test('keys rotated by the CLI are used by every instance, and old tokens stay valid everywhere', async () => {
    const token = async (instance: Instance) => {
      const res = await clientCredentialsAt(instance, 'skms', 'skms-secret-0123456789');
      expect(res.status).toBe(200);
      return ((await res.json()) as { access_token: string }).access_token;
    };
    const before = await token(instances[0]!);
    const out = await cliOk(env, ['keys', 'rotate']);
    const fresh = /now active: (.+?) \(/.exec(out)![1]!.split(', ');
    for (const instance of instances) {
      // Each instance checks for rotated keys every few seconds.
      const kid = await until(
        `new key at ${instance.name}`,
        async () => {
          const { kid } = decodeProtectedHeader(await token(instance));
          return fresh.includes(kid!) ? kid : undefined;
        },
        8000,
      );
      expect(fresh).toContain(kid);
    }
    const after = await token(instances[1]!);
    for (const instance of instances) {
      for (const t of [before, after]) {
        const res = await fetch(`http://127.0.0.1:${instance.port}/token/introspection`, {
          method: 'POST',
          headers: { authorization: basicAuth('skms', 'skms-secret-0123456789'), 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: t }),
        });
        expect(await res.json()).toMatchObject({ active: true, client_id: 'skms' });
      }
    }
  });

  test('a client removed through one database is refused by every instance (their caches are dropped)', async () => {
    await cliOk(env, ['client', 'add', 'short-lived', '--secret', 'short-lived-secret-0123', '--grant', 'client_credentials']);
    for (const instance of instances) expect((await clientCredentialsAt(instance, 'short-lived', 'short-lived-secret-0123')).status).toBe(200);
    // Removed by another process: each instance hears of it from PostgreSQL (NOTIFY), not from this one.
    await cliOk(env, ['client', 'remove', 'short-lived']);
    for (const instance of instances) {
      await until(
        `removal seen by ${instance.name}`,
        async () => ((await clientCredentialsAt(instance, 'short-lived', 'short-lived-secret-0123')).status === 401 ? true : undefined),
        1000,
      );
    }
  });

  test('SIGKILL of one instance under load: the others answer every request, and no acknowledged provisioning is lost', async () => {
    const [a, b, c] = instances as [Instance, Instance, Instance];
    const clients = instances.map((i) => new HttpClient(`http://127.0.0.1:${i.port}`, 8));
    const bearer = `Bearer ${await provisioningToken(a)}`;
    const outcomes = new Map<string, { ok: number; http5xx: number; otherHttp: number; connection: number }>(
      instances.map((i) => [i.name, { ok: 0, http5xx: 0, otherHttp: 0, connection: 0 }]),
    );
    const acknowledged: string[] = [];
    let n = 0;
    const op = async () => {
      const i = n++;
      const target = i % 3;
      const http = clients[target]!;
      const tally = outcomes.get(instances[target]!.name)!;
      try {
        if (i % 2 === 0) {
          const res = await http.form('/token', { grant_type: 'client_credentials' }, { authorization: basicAuth('skms', 'skms-secret-0123456789') });
          if (res.status === 200) tally.ok++;
          else if (res.status >= 500) tally.http5xx++;
          else tally.otherHttp++;
        } else {
          const user = `load-user-${i}`;
          const res = await http.request(
            'PATCH',
            `${PROVISIONING}/configurations/mcptt-1`,
            { authorization: bearer, 'content-type': 'application/json' },
            JSON.stringify({ add: [user] }),
          );
          if (res.status === 200) {
            tally.ok++;
            acknowledged.push(user);
          } else if (res.status >= 500) tally.http5xx++;
          else tally.otherHttp++;
        }
      } catch {
        tally.connection++; // no HTTP answer: the connection was reset or refused
      }
    };
    setTimeout(() => c.child.kill('SIGKILL'), 1000);
    const load = await closedLoop(op, { concurrency: 12, seconds: 3 });
    for (const h of clients) h.close();

    expect(c.child.signalCode).toBe('SIGKILL');
    for (const name of ['A', 'B']) expect(outcomes.get(name)).toMatchObject({ http5xx: 0, otherHttp: 0, connection: 0 });
    // The survivors kept serving (a count, not a rate: the machine may be busy with other test files).
    expect(outcomes.get('A')!.ok + outcomes.get('B')!.ok).toBeGreaterThan(30);
    // The killed instance never answered with an error: its requests failed only as connections.
    expect(outcomes.get('C')).toMatchObject({ http5xx: 0, otherHttp: 0 });
    expect(outcomes.get('C')!.connection).toBeGreaterThan(0);
    expect(load.ok).toBe(n);

    const stored = new Set(
      await database.db('val_service_users').where({ val_service_id: 'mcptt-1' }).whereIn('val_user_id', acknowledged).pluck('val_user_id'),
    );
    expect(acknowledged.filter((u) => !stored.has(u))).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(20);
    // The survivors are healthy afterwards.
    for (const instance of [a, b]) expect((await fetch(`http://127.0.0.1:${instance.port}/readyz`)).status).toBe(200);
  });
});
