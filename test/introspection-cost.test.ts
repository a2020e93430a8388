// What introspection costs (issue 16), through the real endpoint with a real client: a JWT access token is answered
// without oidc-provider's "structured token" error path (src/oidc/jwt-introspection.ts), and a value oidc-provider
// never issued (a JWT, garbage) is unknown without a database round trip (src/oidc/adapter.ts).
import * as oidc from 'openid-client';
import { statementsExecuted } from '../src/db/statement-count.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { basic, introspect, postForm, provision, VAL_SERVER_SECRET, type Deployment } from './security/support.ts';

let database: TestDatabase;
let server: TestServer;
let d: Deployment;
let token: string;
const providerErrors: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  d = await provision(server);
  token = (await oidc.clientCredentialsGrant(d.valServer, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' })).access_token;
  const provider = server.idms.provider();
  provider.on('introspection.error', (_ctx, err) => providerErrors.push(`introspection.error ${err.name}`));
  provider.on('revocation.error', (_ctx, err) => providerErrors.push(`revocation.error ${err.name}`));
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

/** The fewest statements `call` cost over three tries (a background statement may fall into any one). */
async function fewestStatements(call: () => Promise<void>): Promise<number> {
  const counts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = statementsExecuted();
    await call();
    counts.push(statementsExecuted() - before);
  }
  return Math.min(...counts);
}

test('a JWT access token is introspected without oidc-provider raising its structured-token error', async () => {
  providerErrors.length = 0;
  const answer = await oidc.tokenIntrospection(d.valServer, token);
  expect(answer).toMatchObject({ active: true, client_id: 'val-server-1', aud: 'https://skms.example.org' });
  expect(providerErrors).toEqual([]);
});

test('a value never issued here is answered active: false without a database round trip', async () => {
  for (const value of ['not.a.jwt', '!!!', 'x'.repeat(43) + '~', `${token.slice(0, -4)}AAAA`]) {
    const statements = await fewestStatements(async () => {
      const { status, body } = await introspect(d, value);
      expect(status).toBe(200);
      expect(body).toEqual({ active: false });
    });
    expect(statements).toBe(0);
  }
});

test('revoking a JWT access token still works, and costs oidc-provider no error either', async () => {
  providerErrors.length = 0;
  const own = (await oidc.clientCredentialsGrant(d.valServer, { resource: 'https://skms.example.org', scope: '3gpp:seal:val_service' })).access_token;
  const res = await postForm(`${server.issuer}/token/revocation`, { token: own }, { authorization: basic('val-server-1', VAL_SERVER_SECRET) });
  expect(res.status).toBe(200);
  expect((await introspect(d, own)).body).toEqual({ active: false });
  expect(providerErrors).toEqual([]);
});

test('client authentication still comes first: a wrong secret gets invalid_client, whatever the token', async () => {
  const res = await postForm(`${server.issuer}/token/introspection`, { token }, { authorization: basic('val-server-1', 'wrong-secret') });
  expect(res.status).toBe(401);
  expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
});
