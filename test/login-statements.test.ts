// What one password login costs PostgreSQL, pinned (issue 16): the five requests of bench/flows.ts passwordLogin
// (authorization request, login page, login form, resume, code redemption) counted as idms_db_statements_total counts
// them (src/db/statement-count.ts: every statement the server's pools send, BEGIN and COMMIT included). A change that
// adds a round trip to the login fails here; one that removes some lowers the number (and docs/scaling.md's table).
import * as oidc from 'openid-client';
import { statementsExecuted } from '../src/db/statement-count.ts';
import { Browser } from './helpers/browser.ts';
import { cliOk } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const REDIRECT = 'http://127.0.0.1:8123/cb';
/**
 * The statements of one login: authorization 1, login page 1, login form 4 (the interaction; the submission's claim,
 * the reservation and the credentials; the eligibility read, the release, the submission's end and the audit event;
 * the interaction's result), resume 2 (the interaction with its account; the grant, the code, the session and the
 * interaction's removal in one), code redemption 3.
 */
const PER_LOGIN = 11;

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'alice']);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

/** One login as the benchmark's (scope without offline_access, so no consent step), redeemed; returns its statements. */
async function countedLogin(): Promise<number> {
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(ue, {
    redirect_uri: REDIRECT,
    scope: 'openid 3gpp:seal:val_service',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: 'state-1',
    nonce: 'nonce-1',
  });
  const before = statementsExecuted();
  const callback = await new Browser().login(url, 'alice', 'alice-password-1', REDIRECT);
  const tokens = await oidc.authorizationCodeGrant(ue, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'state-1', expectedNonce: 'nonce-1' });
  const statements = statementsExecuted() - before;
  expect(tokens.claims()).toMatchObject({ sub: 'alice', val_service_ids: ['mcptt-1'] });
  return statements;
}

test(`one password login, code redeemed, costs ${PER_LOGIN} statements`, async () => {
  // The first login also fills the process's caches (client, resource server); a background statement (the change
  // feed, the access log) may fall into any one login: the fewest of three is the login's own cost.
  await countedLogin();
  const counts = [await countedLogin(), await countedLogin(), await countedLogin()];
  expect(Math.min(...counts)).toBe(PER_LOGIN);
});
