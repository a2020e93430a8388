// The same checklist at the inter-domain grants (RFC 8693 token exchange, RFC 7523 JWT-bearer) and the provisioning API:
// access tokens, ID tokens and security tokens are not interchangeable, forged tokens are refused, assertions are single use.
import crypto from 'node:crypto';
import * as oidc from 'openid-client';
import { decodeJwt, exportJWK, type JWK } from 'jose';
import { SECURITY_TOKEN_TYP } from '../../src/federation/security-token.ts';
import { cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ACCESS_TOKEN_TYPE, JWT_BEARER, JWT_TOKEN_TYPE, TOKEN_EXCHANGE, tempDir, writeTemp, federatedClientArgs } from '../helpers/federation.ts';
import { provisioningToken, valServerClient } from '../helpers/provisioning.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { forgeries, signEs256, signerFromJwk, type Signer } from './forge.ts';
import { insecure, introspect, loginAndRedeem, PASSWORDS, REDIRECT, serverSigningKeys, type Deployment } from './support.ts';

const PARTNER = 'https://idms.partner.example.org';
const MCX = 'mcx.example.org';

let database: TestDatabase;
let server: TestServer;
let d: Deployment;
let partner: Signer;
let ours: Signer;
let t: { access: string; id: string; refresh: string; security: string; provisioning: string };

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  const env = server.env;
  await cliOk(env, ['user', 'add', 'alice', '--password', PASSWORDS.alice]);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice']);
  await cliOk(env, federatedClientArgs('val-ue', REDIRECT));
  await cliOk(env, ['client', 'add', 'val-server-1', '--secret', 'val-server-secret-1', '--grant', 'client_credentials']);
  await cliOk(env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1']);
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  partner = { kid: 'partner-1', key: privateKey };
  await cliOk(env, [
    'partner',
    'add',
    PARTNER,
    '--jwks',
    writeTemp(tempDir(), 'partner.jwks.json', JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'partner-1', use: 'sig' }] })),
    '--allow-local-users',
  ]); // alice is local here
  ours = signerFromJwk((await serverSigningKeys(server, database.db)).find((k: JWK) => k.alg === 'ES256')! as crypto.JsonWebKey & { kid: string });

  const issuer = new URL(server.issuer);
  const ue = await oidc.discovery(issuer, 'val-ue', undefined, oidc.None(), insecure);
  const valServer = await oidc.discovery(issuer, 'val-server-1', 'val-server-secret-1', undefined, insecure);
  d = { server, ue, web: ue, valServer };
  const tokens = await loginAndRedeem(ue, 'alice');
  const exchanged = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_id: 'val-ue',
      grant_type: TOKEN_EXCHANGE,
      subject_token: tokens.access_token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: PARTNER,
    }),
  });
  const security = (await exchanged.json()) as { access_token: string };
  if (exchanged.status !== 200) throw new Error(`token exchange failed: ${JSON.stringify(security)}`);
  t = {
    access: tokens.access_token,
    id: tokens.id_token!,
    refresh: tokens.refresh_token!,
    security: security.access_token,
    provisioning: await provisioningToken(await valServerClient(server, 'mcx', 'mcx-secret-0123456789'), server),
  };
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const form = (fields: Record<string, string>) =>
  fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'val-ue', ...fields }),
  });
// Home side (access token → security token for PARTNER) or partner side (security token → access token here).
const exchange = (subject: string, type = ACCESS_TOKEN_TYPE) =>
  form({ grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: type, ...(type === ACCESS_TOKEN_TYPE ? { audience: PARTNER } : {}) });
const assertion = (jwt: string) => form({ grant_type: JWT_BEARER, assertion: jwt });
const provisioning = (bearer: string) =>
  fetch(`${server.issuer}/ss-idms-provisioning/v1/configurations/mcptt-1`, { headers: { authorization: `Bearer ${bearer}` } });
const errorOf = async (res: Response) => ({ status: res.status, error: ((await res.json()) as { error?: string; cause?: string }).error ?? undefined });

/** A security token as a partner S-IdMS would mint it for this server (fresh jti each call). */
const partnerClaims = () => {
  const now = Math.floor(Date.now() / 1000);
  return { iss: PARTNER, sub: 'alice', val_user_id: 'alice', aud: [server.issuer, 'val-ue'], iat: now, exp: now + 60, jti: crypto.randomUUID() };
};

describe('the security token is only a security token', () => {
  test('it is typed distinctly from access and ID tokens and is for one partner', () => {
    expect(decodeJwt(t.security).aud).toEqual([PARTNER, 'val-ue']);
    expect(JSON.parse(Buffer.from(t.security.split('.')[0]!, 'base64url').toString()).typ).toBe(SECURITY_TOKEN_TYP);
  });

  test('is not an active access token at introspection', async () => {
    expect((await introspect(d, t.security)).body).toEqual({ active: false });
  });

  test('is refused as a bearer token by the provisioning API and userinfo', async () => {
    expect((await provisioning(t.security)).status).toBe(401);
    expect((await fetch(`${server.issuer}/me`, { headers: { authorization: `Bearer ${t.security}` } })).status).toBe(401);
  });

  test('is refused as id_token_hint', async () => {
    expect((await fetch(`${server.issuer}/session/end?id_token_hint=${t.security}`, { headers: { accept: 'application/json' } })).status).toBe(400);
  });

  test('is refused as a refresh token and as a token exchange subject_token of type access_token', async () => {
    expect(await errorOf(await form({ grant_type: 'refresh_token', refresh_token: t.security }))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await errorOf(await exchange(t.security))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test('is refused as a JWT-bearer assertion by the issuer that minted it (it is for the partner)', async () => {
    expect(await errorOf(await assertion(t.security))).toEqual({ status: 400, error: 'invalid_grant' });
  });
});

describe('access and ID tokens are not assertions or provisioning credentials', () => {
  test('an ID token is refused by the provisioning API, as an assertion and as a subject_token', async () => {
    expect((await provisioning(t.id)).status).toBe(401);
    expect(await errorOf(await assertion(t.id))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await errorOf(await exchange(t.id))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await errorOf(await exchange(t.id, JWT_TOKEN_TYPE))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test("a user's access token is refused by the provisioning API (audience) and as an assertion", async () => {
    expect((await provisioning(t.access)).status).toBe(403);
    expect(await errorOf(await assertion(t.access))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test("a VAL server's provisioning token cannot be exchanged for a security token", async () => {
    expect(await errorOf(await exchange(t.provisioning))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test('a revoked access token is refused by the provisioning API and by token exchange', async () => {
    const token = await provisioningToken(await valServerClient(server, 'mcx', 'mcx-secret-0123456789'), server);
    expect((await provisioning(token)).status).toBe(200);
    await oidc.tokenRevocation(await valServerClient(server, 'mcx', 'mcx-secret-0123456789'), token);
    expect((await provisioning(token)).status).toBe(401);
    const user = await loginAndRedeem(d.ue, 'alice');
    await oidc.tokenRevocation(d.ue, user.access_token);
    expect(await errorOf(await exchange(user.access_token))).toEqual({ status: 400, error: 'invalid_grant' });
  });
});

describe('replay (RFC 7523 §3, TS 33.180 annex B.8)', () => {
  test('a security token is accepted once; its replay is refused', async () => {
    const jwt = signEs256({ kid: partner.kid, typ: SECURITY_TOKEN_TYP }, partnerClaims(), partner.key);
    expect((await assertion(jwt)).status).toBe(200);
    expect(await errorOf(await assertion(jwt))).toEqual({ status: 400, error: 'invalid_grant' });
  });
});

describe('forged tokens are refused', () => {
  test('by the provisioning API (control: the undamaged construction is accepted)', async () => {
    const claims = decodeJwt(t.provisioning);
    const { control, forged } = forgeries(ours, 'at+jwt', () => ({ ...claims, jti: crypto.randomUUID() }));
    expect((await provisioning(control())).status).toBe(200);
    for (const [name, token] of Object.entries(forged)) {
      const status = (await provisioning(token)).status;
      // Node's 16 KiB header limit stops the oversized one first.
      expect({ name, status }).toEqual({ name, status: name.startsWith('an oversized') ? 431 : 401 });
    }
  });

  test('as a token exchange subject_token (control accepted)', async () => {
    const claims = decodeJwt(t.access);
    const { control, forged } = forgeries(ours, 'at+jwt', () => ({ ...claims, jti: crypto.randomUUID() }));
    expect((await exchange(control())).status).toBe(200);
    for (const [name, token] of Object.entries(forged)) {
      expect({ name, ...(await errorOf(await exchange(token))) }).toEqual({ name, status: 400, error: 'invalid_grant' });
    }
  });

  test("as a JWT-bearer assertion signed in the partner's name (control accepted)", async () => {
    const { control, forged } = forgeries(partner, SECURITY_TOKEN_TYP, partnerClaims);
    expect((await assertion(control())).status).toBe(200);
    // TS 33.180 annex B.8 lets another vendor's S-IdMS send typ JWT or no typ (docs/inter-domain.md): genuine here.
    const genuineHere = new Set(['another typ', 'no typ']);
    for (const [name, token] of Object.entries(forged)) {
      const expected = genuineHere.has(name) ? { status: 200, error: undefined } : { status: 400, error: 'invalid_grant' };
      expect({ name, ...(await errorOf(await assertion(token))) }).toEqual({ name, ...expected });
    }
  });
});
