// Home S-IdMS side of inter-domain authorization: RFC 8693 token exchange of a VAL user's access token for a partner's security token.
import crypto from 'node:crypto';
import { jest } from '@jest/globals';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cli, cliOk } from './helpers/cli.ts';
import { statementsExecuted } from '../src/db/statement-count.ts';
import {
  ACCESS_TOKEN_TYPE,
  exchangeForPartner,
  insecure,
  JWT_TOKEN_TYPE,
  lastAudit,
  login,
  publicClient,
  REDIRECT,
  serverSigningKey,
  TOKEN_EXCHANGE,
  tempDir,
  writeTemp,
} from './helpers/federation.ts';

const PARTNER_B = 'https://idms.partner-b.example.org';
const PARTNER_C = 'https://idms.partner-c.example.org';
const ISSUE = 'federation.security_token.issue';

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;
let other: oidc.Configuration;
let noGrant: oidc.Configuration;
let valServer: oidc.Configuration;
// Another real S-IdMS (own database and keys), for "issued by another server".
let foreignDatabase: TestDatabase;
let foreign: TestServer;

beforeAll(async () => {
  database = await createTestDatabase();
  foreignDatabase = await createTestDatabase();
  [server, foreign] = await Promise.all([
    startTestServer(database, { keyRefreshMs: 100 }),
    startTestServer(foreignDatabase, { env: { IDMS_SECURITY_TOKEN_TTL: '20' } }),
  ]);
  const env = server.env;
  for (const user of ['alice', 'bob', 'erin', 'fred']) await cliOk(env, ['user', 'add', user, '--password', `${user}-password-1`]);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice', 'bob', 'erin', 'fred']);
  const grants = ['--grant', 'authorization_code', '--grant', 'refresh_token'];
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT, ...grants, '--grant', TOKEN_EXCHANGE]);
  await cliOk(env, ['client', 'add', 'other-ue', '--public', '--redirect-uri', REDIRECT, ...grants, '--grant', TOKEN_EXCHANGE]);
  await cliOk(env, ['client', 'add', 'plain-ue', '--public', '--redirect-uri', REDIRECT, ...grants]);
  await cliOk(env, ['client', 'add', 'val-server-1', '--secret', 'val-server-secret-1', '--grant', 'client_credentials', '--grant', TOKEN_EXCHANGE]);

  // The partners' public keys, as their operators would hand them over.
  const dir = tempDir();
  for (const partner of [PARTNER_B, PARTNER_C]) {
    const { publicKey } = await generateKeyPair('ES256');
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    await cliOk(env, ['partner', 'add', partner, '--jwks', writeTemp(dir, 'partner.jwks.json', JSON.stringify(jwks))]);
  }

  await cliOk(foreign.env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(foreign.env, ['service', 'grant', 'mcptt-1', 'alice']);
  await cliOk(foreign.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT, ...grants, '--grant', TOKEN_EXCHANGE]);
  await cliOk(foreign.env, [
    'partner',
    'add',
    PARTNER_B,
    '--jwks',
    writeTemp(dir, 'b.json', JSON.stringify({ keys: [await exportJWK((await generateKeyPair('ES256')).publicKey)] })),
  ]);

  ue = await publicClient(server.issuer, 'val-ue');
  other = await publicClient(server.issuer, 'other-ue');
  noGrant = await publicClient(server.issuer, 'plain-ue');
  valServer = await oidc.discovery(new URL(server.issuer), 'val-server-1', 'val-server-secret-1', undefined, insecure);
});

afterAll(async () => {
  await Promise.all([server?.close(), foreign?.close()]);
  await Promise.all([database?.drop(), foreignDatabase?.drop()]);
});

const jwks = () => createRemoteJWKSet(new URL(`${server.issuer}/jwks`));

/** Asserts the exact error code, and that the refusal was audited with the expected reason. */
async function expectRefused(request: Promise<unknown>, error: string, reason: RegExp) {
  await expect(request).rejects.toMatchObject({ error });
  const event = await lastAudit(database.db, ISSUE);
  expect(event).toMatchObject({ result: 'failure', details: expect.objectContaining({ error }) });
  expect(event.details.reason).toMatch(reason);
  return event;
}

describe('token exchange at the home S-IdMS (RFC 8693)', () => {
  test('an access token becomes a security token for exactly one partner', async () => {
    const tokens = await login(ue, 'alice', 'alice-password-1');
    const res = await exchangeForPartner(ue, tokens.access_token, PARTNER_B);

    // RFC 8693 §2.2.1 response (openid-client lower-cases token_type).
    expect(res.issued_token_type).toBe(JWT_TOKEN_TYPE);
    expect(res.token_type).toBe('n_a');
    expect(res.expires_in).toBe(60);
    expect(res.refresh_token).toBeUndefined();

    const header = decodeProtectedHeader(res.access_token);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'seal-security+jwt' });
    const { payload } = await jwtVerify(res.access_token, jwks(), { issuer: server.issuer, audience: PARTNER_B, typ: 'seal-security+jwt' });
    // TS 33.180 annex B.8: aud = the partner S-IdMS and the requesting client.
    expect(payload.aud).toEqual([PARTNER_B, 'val-ue']);
    expect(payload).toMatchObject({ sub: 'alice', val_user_id: 'alice' });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    // The security token is not an access token: nothing that verifies access tokens takes it.
    await expect(jwtVerify(res.access_token, jwks(), { typ: 'at+jwt' })).rejects.toThrow();
    expect((await oidc.tokenIntrospection(valServer, res.access_token)).active).toBe(false);

    const event = await lastAudit(database.db, ISSUE);
    expect(event).toMatchObject({
      actor: 'val-ue',
      subject: 'alice',
      result: 'success',
      details: { grant: TOKEN_EXCHANGE, partner: PARTNER_B, jti: payload.jti },
    });

    // Each exchange mints a new token with its own jti.
    const again = await exchangeForPartner(ue, tokens.access_token, PARTNER_B);
    expect(decodeJwt(again.access_token).jti).not.toBe(payload.jti);
  });

  test('discovery advertises both inter-domain grants', () => {
    expect(ue.serverMetadata().grant_types_supported).toEqual(expect.arrayContaining([TOKEN_EXCHANGE, 'urn:ietf:params:oauth:grant-type:jwt-bearer']));
  });

  test("the lifetime is IDMS_SECURITY_TOKEN_TTL, and never beyond the subject token's own expiry", async () => {
    const foreignUe = await publicClient(foreign.issuer, 'val-ue');
    const tokens = await login(foreignUe, 'alice', 'alice-password-1');
    const res = await exchangeForPartner(foreignUe, tokens.access_token, PARTNER_B);
    expect(res.expires_in).toBe(20);
    const claims = decodeJwt(res.access_token);
    expect(claims.exp! - claims.iat!).toBe(20);

    // An access token with 15 s left yields a security token with at most 15 s (re-signed with the server's own key).
    const { kid, key } = await serverSigningKey(database.db);
    const alice = decodeJwt((await login(ue, 'alice', 'alice-password-1')).access_token);
    const now = Math.floor(Date.now() / 1000);
    const short = await new SignJWT({ ...alice, exp: now + 15 }).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(key);
    const bounded = await exchangeForPartner(ue, short, PARTNER_B);
    expect(bounded.expires_in).toBeLessThanOrEqual(15);
    expect(decodeJwt(bounded.access_token).exp).toBeLessThanOrEqual(now + 15);
  });

  test('resource names the partner exactly as audience does (TS 33.180 annex B.7.2)', async () => {
    const tokens = await login(ue, 'bob', 'bob-password-1');
    const res = await oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, {
      subject_token: tokens.access_token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: PARTNER_C,
      requested_token_type: JWT_TOKEN_TYPE,
    });
    expect(decodeJwt(res.access_token)).toMatchObject({ aud: [PARTNER_C, 'val-ue'], sub: 'bob' });
  });
});

describe('refusals at the home S-IdMS', () => {
  let alice: Awaited<ReturnType<typeof login>>;
  beforeAll(async () => {
    alice = await login(ue, 'alice', 'alice-password-1');
  });

  test('an audience that is not a configured partner is invalid_target', async () => {
    await expectRefused(exchangeForPartner(ue, alice.access_token, 'https://idms.unknown.example.org'), 'invalid_target', /not a configured partner/);
    await expectRefused(exchangeForPartner(ue, alice.access_token, server.issuer), 'invalid_target', /not a configured partner/);
    await expectRefused(
      oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, { subject_token: alice.access_token, subject_token_type: ACCESS_TOKEN_TYPE }),
      'invalid_target',
      /must name the partner/,
    );
    // One security token is for one partner: naming two is refused, not answered with a token for both.
    await expectRefused(exchangeForPartner(ue, alice.access_token, PARTNER_B, { resource: PARTNER_C }), 'invalid_target', /exactly one/);
  });

  test('a removed partner is refused at once', async () => {
    const dir = tempDir();
    const { publicKey } = await generateKeyPair('ES256');
    const partner = 'https://idms.short-lived.example.org';
    await cliOk(server.env, ['partner', 'add', partner, '--jwks', writeTemp(dir, 'p.json', JSON.stringify({ keys: [await exportJWK(publicKey)] }))]);
    await expect(exchangeForPartner(ue, alice.access_token, partner)).resolves.toMatchObject({ issued_token_type: JWT_TOKEN_TYPE });
    await cliOk(server.env, ['partner', 'remove', partner]);
    await expectRefused(exchangeForPartner(ue, alice.access_token, partner), 'invalid_target', /not a configured partner/);
  });

  test('an expired subject token is invalid_grant', async () => {
    // Re-signed with this server's own key, so expiry is the only fault.
    const { kid, key } = await serverSigningKey(database.db);
    const claims = decodeJwt(alice.access_token);
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ ...claims, iat: now - 400, exp: now - 100 }).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(key);
    await expectRefused(exchangeForPartner(ue, expired, PARTNER_B), 'invalid_grant', /expired/);
  });

  test('a revoked subject token is invalid_grant (RFC 7009)', async () => {
    const tokens = await login(ue, 'alice', 'alice-password-1');
    await oidc.tokenRevocation(ue, tokens.access_token);
    await expectRefused(exchangeForPartner(ue, tokens.access_token, PARTNER_B), 'invalid_grant', /revoked/);
  });

  test('a subject token whose grant was revoked (refresh token replay) is invalid_grant', async () => {
    const tokens = await login(ue, 'bob', 'bob-password-1');
    await oidc.refreshTokenGrant(ue, tokens.refresh_token!);
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expectRefused(exchangeForPartner(ue, tokens.access_token, PARTNER_B), 'invalid_grant', /grant of subject_token has been revoked/);
  });

  test('a forged subject token is invalid_grant', async () => {
    const [h, p] = alice.access_token.split('.');
    const bobClaims = Buffer.from(JSON.stringify({ ...decodeJwt(alice.access_token), sub: 'bob' })).toString('base64url');
    await expectRefused(exchangeForPartner(ue, `${h}.${bobClaims}.${alice.access_token.split('.')[2]}`, PARTNER_B), 'invalid_grant', /signature invalid/);
    await expectRefused(
      exchangeForPartner(ue, `${h}.${p}.${Buffer.from('not-a-signature').toString('base64url')}`, PARTNER_B),
      'invalid_grant',
      /signature invalid/,
    );
  });

  test('an access token issued by another S-IdMS is invalid_grant', async () => {
    const foreignTokens = await login(await publicClient(foreign.issuer, 'val-ue'), 'alice', 'alice-password-1');
    await expectRefused(exchangeForPartner(ue, foreignTokens.access_token, PARTNER_B), 'invalid_grant', /no known key|signature invalid/);
  });

  test('an ID token, a refresh token or a security token passed as access token is invalid_grant', async () => {
    await expectRefused(exchangeForPartner(ue, alice.id_token!, PARTNER_B), 'invalid_grant', /claim typ/);
    await expectRefused(exchangeForPartner(ue, alice.refresh_token!, PARTNER_B), 'invalid_grant', /malformed/);
    const security = await exchangeForPartner(ue, alice.access_token, PARTNER_B);
    await expectRefused(exchangeForPartner(ue, security.access_token, PARTNER_C), 'invalid_grant', /claim typ/);
  });

  test('a client not registered for the grant is unauthorized_client', async () => {
    const tokens = await login(noGrant, 'alice', 'alice-password-1');
    await expectRefused(exchangeForPartner(noGrant, tokens.access_token, PARTNER_B), 'unauthorized_client', /not allowed/);
  });

  test('a subject token issued to another client is invalid_grant', async () => {
    await expectRefused(exchangeForPartner(other, alice.access_token, PARTNER_B), 'invalid_grant', /another client/);
  });

  test('a client_credentials token has no VAL user to exchange: invalid_grant', async () => {
    const own = await oidc.clientCredentialsGrant(valServer);
    await expectRefused(exchangeForPartner(valServer, own.access_token, PARTNER_B), 'invalid_grant', /does not represent a VAL user/);
  });

  test('a user disabled since the access token was issued is invalid_grant', async () => {
    const tokens = await login(ue, 'erin', 'erin-password-1');
    await expect(exchangeForPartner(ue, tokens.access_token, PARTNER_B)).resolves.toBeDefined();
    await cliOk(server.env, ['user', 'disable', 'erin']);
    const event = await expectRefused(exchangeForPartner(ue, tokens.access_token, PARTNER_B), 'invalid_grant', /unknown or disabled/);
    expect(event.subject).toBe('erin');
  });

  test('a user removed from every VAL service since is invalid_grant', async () => {
    const tokens = await login(ue, 'fred', 'fred-password-1');
    await cliOk(server.env, ['service', 'revoke', 'mcptt-1', 'fred']);
    await expectRefused(exchangeForPartner(ue, tokens.access_token, PARTNER_B), 'invalid_grant', /no longer provisioned/);
  });

  test('malformed requests are invalid_request', async () => {
    const base = { subject_token: alice.access_token, subject_token_type: ACCESS_TOKEN_TYPE, audience: PARTNER_B };
    const cases: [Record<string, string>, RegExp][] = [
      [{ ...base, requested_token_type: ACCESS_TOKEN_TYPE }, /requested_token_type/],
      [{ ...base, subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }, /subject_token_type/],
      [{ ...base, actor_token: alice.access_token, actor_token_type: ACCESS_TOKEN_TYPE }, /actor_token/],
      [{ subject_token_type: ACCESS_TOKEN_TYPE, audience: PARTNER_B }, /subject_token/],
    ];
    for (const [params, reason] of cases) {
      await expectRefused(oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, params), 'invalid_request', reason);
    }
  });
});

describe('partner CLI input checks', () => {
  test('refuses private keys, symmetric keys, bad issuers and missing files with one line', async () => {
    const dir = tempDir();
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const priv = writeTemp(dir, 'private.json', JSON.stringify({ keys: [await exportJWK(privateKey)] }));
    const oct = writeTemp(dir, 'oct.json', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
    const checks: [string[], RegExp][] = [
      [['partner', 'add', 'https://p.example.org', '--jwks', priv], /private key material/],
      [['partner', 'add', 'https://p.example.org', '--jwks', oct], /symmetric/],
      [['partner', 'add', 'ftp://p.example.org', '--jwks', oct], /http\(s\) URL/],
      [['partner', 'add', server.issuer, '--jwks', priv], /own issuer/],
      [['partner', 'add', 'https://p.example.org', '--jwks', `${dir}/missing.json`], /cannot read JWKS/],
      [['partner', 'add', 'https://p.example.org'], /usage/],
      [['partner', 'remove', 'https://never-added.example.org'], /no partner/],
    ];
    for (const [argv, message] of checks) {
      const r = await cli(server.env, argv);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const list = await cliOk(server.env, ['partner', 'list']);
    expect(list).toContain(`${PARTNER_B}\tjwks k1 ES256`);
    expect(list).not.toContain('p.example.org');
  });
});

/** The audit events of token exchange written while `request` ran (refused or not). */
async function eventsDuring(request: () => Promise<unknown>) {
  const { max } = (await database.db('audit_events').max('id as max').first()) as { max: string | null };
  await request().catch(() => {});
  return database
    .db('audit_events')
    .where({ action: ISSUE })
    .where('id', '>', max ?? 0)
    .orderBy('id')
    .select('actor', 'subject', 'result', 'details');
}

/** The fewest statements the server sent for one of `runs` requests (a change-feed statement may fall into one). */
async function fewestStatements(runs: number, request: () => Promise<unknown>): Promise<number> {
  let fewest = Infinity;
  for (let i = 0; i < runs; i++) {
    const before = statementsExecuted();
    await request();
    fewest = Math.min(fewest, statementsExecuted() - before);
  }
  return fewest;
}

describe('the eligibility read writes the success event (issue 16: one round trip)', () => {
  test('a successful exchange is one statement', async () => {
    const tokens = await login(ue, 'alice', 'alice-password-1');
    await exchangeForPartner(ue, tokens.access_token, PARTNER_B); // the revocation check is cached after the first
    expect(await fewestStatements(5, () => exchangeForPartner(ue, tokens.access_token, PARTNER_B))).toBe(1);
  });

  test('a subject token exchanged before is not signature-checked again (the verifier remembers it)', async () => {
    const tokens = await login(ue, 'alice', 'alice-password-1');
    await exchangeForPartner(ue, tokens.access_token, PARTNER_B);
    const checks = jest.spyOn(globalThis.crypto.subtle, 'verify');
    try {
      await exchangeForPartner(ue, tokens.access_token, PARTNER_B);
      expect(checks).not.toHaveBeenCalled();
    } finally {
      checks.mockRestore();
    }
  });

  test('one event per request: the success with the issued jti, a refusal with its reason and no jti', async () => {
    await cliOk(server.env, ['user', 'add', 'gail', '--password', 'gail-password-1']);
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'gail']);
    const tokens = await login(ue, 'gail', 'gail-password-1');
    let issued: string | undefined;
    const success = { actor: 'val-ue', subject: 'gail', result: 'success' };
    expect(await eventsDuring(async () => (issued = (await exchangeForPartner(ue, tokens.access_token, PARTNER_B)).access_token))).toEqual([
      { ...success, details: { grant: TOKEN_EXCHANGE, partner: PARTNER_B, jti: decodeJwt(issued!).jti } },
    ]);

    await cliOk(server.env, ['user', 'disable', 'gail']);
    const refusal = { grant: TOKEN_EXCHANGE, partner: PARTNER_B, error: 'invalid_grant', reason: 'the VAL user is unknown or disabled' };
    expect(await eventsDuring(() => exchangeForPartner(ue, tokens.access_token, PARTNER_B))).toEqual([{ ...success, result: 'failure', details: refusal }]);
    await cliOk(server.env, ['user', 'enable', 'gail']);
    await cliOk(server.env, ['service', 'revoke', 'mcptt-1', 'gail']);
    expect(await eventsDuring(() => exchangeForPartner(ue, tokens.access_token, PARTNER_B))).toEqual([
      { ...success, result: 'failure', details: { ...refusal, reason: 'the VAL user is no longer provisioned for any VAL service' } },
    ]);
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'gail']);
    expect(await eventsDuring(async () => (issued = (await exchangeForPartner(ue, tokens.access_token, PARTNER_B)).access_token))).toEqual([
      { ...success, details: { grant: TOKEN_EXCHANGE, partner: PARTNER_B, jti: decodeJwt(issued!).jti } },
    ]);
  });

  test("a partner domain's user known here only by a mapping is refused, without a success event", async () => {
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'victor', '--allow-unknown']);
    const { kid, key } = await serverSigningKey(database.db);
    const alice = await login(ue, 'alice', 'alice-password-1');
    const claims = { ...decodeJwt(alice.access_token), sub: 'victor', jti: crypto.randomUUID() };
    const victor = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(key);
    const events = await eventsDuring(() => exchangeForPartner(ue, victor, PARTNER_B));
    expect(events).toEqual([
      {
        actor: 'val-ue',
        subject: 'victor',
        result: 'failure',
        details: { grant: TOKEN_EXCHANGE, partner: PARTNER_B, error: 'invalid_grant', reason: 'the VAL user is unknown or disabled' },
      },
    ]);
  });

  test('an access token without a grant is exchanged on its VAL user alone, as before', async () => {
    const { kid, key } = await serverSigningKey(database.db);
    const alice = await login(ue, 'alice', 'alice-password-1');
    const claims: Record<string, unknown> = { ...decodeJwt(alice.access_token), jti: crypto.randomUUID() };
    delete claims.grant_id;
    const token = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(key);
    let issued: string | undefined;
    expect(await eventsDuring(async () => (issued = (await exchangeForPartner(ue, token, PARTNER_B)).access_token))).toEqual([
      { actor: 'val-ue', subject: 'alice', result: 'success', details: { grant: TOKEN_EXCHANGE, partner: PARTNER_B, jti: decodeJwt(issued!).jti } },
    ]);
  });
});
