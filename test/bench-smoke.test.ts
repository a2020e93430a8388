// The benchmark's harness against a real server for a second: its flows succeed and its counts add up (no speed asserted).
import { clientCredentials, introspect, passwordLogin, RefreshChains, type FlowTarget } from '../bench/flows.ts';
import { closedLoop, HttpClient, paced } from '../bench/load.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';

let database: TestDatabase;
let server: TestServer;
let target: FlowTarget;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, ['user', 'add', 'bench-user', '--password', 'bench-password-1']);
  await cliOk(server.env, ['service', 'grant', 'bench-svc', 'bench-user']);
  await cliOk(server.env, ['client', 'add', 'bench-ue', '--public', '--redirect-uri', 'http://127.0.0.1:9/cb']);
  await cliOk(server.env, ['client', 'add', 'bench-vs', '--secret', 'bench-vs-secret-0123', '--grant', 'client_credentials']);
  await cliOk(server.env, ['resource', 'add', 'https://skms.bench.example', '--scope', '3gpp:seal:val_service']);
  target = {
    http: new HttpClient(server.issuer, 4),
    ue: { clientId: 'bench-ue', redirectUri: 'http://127.0.0.1:9/cb' },
    valServer: { clientId: 'bench-vs', secret: 'bench-vs-secret-0123' },
  };
});

afterAll(async () => {
  target?.http.close();
  await server?.close();
  await database?.drop();
});

test('a closed loop of client_credentials grants succeeds, stops at maxCount and reports latencies', async () => {
  const res = await closedLoop(async () => void (await clientCredentials(target, 'https://skms.bench.example', '3gpp:seal:val_service')), {
    concurrency: 4,
    seconds: 1,
    maxCount: 200,
  });
  expect(res.errors).toBe(0);
  expect(res.ok).toBeGreaterThan(0);
  expect(res.ok).toBeLessThanOrEqual(200);
  expect(res.p50).toBeLessThanOrEqual(res.p99);
  expect(res.p99).toBeLessThanOrEqual(res.max);
});

test('the login flow yields a refresh chain that rotates, and its access tokens introspect as active', async () => {
  const first = await passwordLogin(target, { id: 'bench-user', password: 'bench-password-1' }, 'openid offline_access 3gpp:seal:val_service');
  const chains = new RefreshChains([first.refresh_token!]);
  const tokens: string[] = [];
  const res = await closedLoop(async () => void tokens.push((await chains.next(target)).access_token), { concurrency: 1, seconds: 0.5, maxCount: 20 });
  expect(res.errors).toBe(0);
  expect(chains.size).toBe(1);
  await introspect(target, tokens.at(-1)!);
});

test('a wrong password is an error the generator counts, not a success', async () => {
  const res = await closedLoop(async () => void (await passwordLogin(target, { id: 'bench-user', password: 'wrong-password' }, 'openid')), {
    concurrency: 1,
    seconds: 1,
    maxCount: 1,
  });
  expect(res).toMatchObject({ ok: 0, errors: 1 });
  expect(res.errorSamples[0]).toMatch(/login form: HTTP 400/);
});

test('a paced run issues the scheduled number of requests', async () => {
  const res = await paced(async () => void (await clientCredentials(target, 'https://skms.bench.example', '3gpp:seal:val_service')), {
    rate: 40,
    seconds: 0.5,
  });
  expect(res.ok + res.errors).toBe(20);
  expect(res.errors).toBe(0);
});
