// Partner S-IdMS side: RFC 7523 JWT-bearer (and token exchange) with a home S-IdMS's security token, and every refusal.
import crypto from 'node:crypto';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { serversHeardChanges, startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import {
  ACCESS_TOKEN_TYPE,
  generateSigner,
  JWT_BEARER,
  JWT_TOKEN_TYPE,
  lastAudit,
  publicClient,
  publicJwksOf,
  selfSignedCertificate,
  TOKEN_EXCHANGE,
  tempDir,
  writeTemp,
  type PartnerSigner,
} from './helpers/federation.ts';
import { mintSecurityToken, SECURITY_TOKEN_TYP } from '../src/federation/security-token.ts';
import { sweepSeenSecurityTokens } from '../src/federation/replay.ts';
import { statementsExecuted } from '../src/db/statement-count.ts';

// Home S-IdMS played by the test: one publishing a JWKS, one known by an X.509 certificate.
const HOME = 'https://idms.home.example.org';
const HOME_CERT = 'https://idms.home-cert.example.org';
const STRANGER = 'https://idms.stranger.example.org';
const ACCEPT = 'federation.security_token.accept';

type Signer = PartnerSigner;
const home = generateSigner('home-1');
const homeCert = generateSigner('cert-1', 'RS256');
const stranger = generateSigner('home-1');

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;
let otherUe: oidc.Configuration;
let plainUe: oidc.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  const env = server.env;
  // Only a mapping for alice here: she has no credentials in this domain.
  await cliOk(env, ['service', 'grant', 'b-ptt', 'alice', 'dave', '--allow-unknown']);
  await cliOk(env, ['service', 'grant', 'b-data', 'alice', '--allow-unknown']);
  await cliOk(env, ['user', 'add', 'dave', '--password', 'dave-password-1']);
  await cliOk(env, ['user', 'disable', 'dave']);
  await cliOk(env, ['resource', 'add', 'https://skms.partner.example.org']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--grant', JWT_BEARER, '--grant', TOKEN_EXCHANGE]);
  await cliOk(env, ['client', 'add', 'other-ue', '--public', '--grant', JWT_BEARER]);
  await cliOk(env, ['client', 'add', 'plain-ue', '--public', '--redirect-uri', 'http://127.0.0.1:8123/cb']);

  const dir = tempDir();
  // dave is a local user here: HOME may vouch for local users (issue 10 item 11), so his refusal is for being disabled.
  await cliOk(env, ['partner', 'add', HOME, '--jwks', writeTemp(dir, 'home.jwks.json', JSON.stringify(publicJwksOf(home))), '--allow-local-users']);
  await cliOk(env, ['partner', 'add', HOME_CERT, '--cert', selfSignedCertificate(dir, homeCert.key, 'idms.home-cert.example.org')]);

  ue = await publicClient(server.issuer, 'val-ue');
  otherUe = await publicClient(server.issuer, 'other-ue');
  plainUe = await publicClient(server.issuer, 'plain-ue');
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const now = () => Math.floor(Date.now() / 1000);

/** A security token exactly as the home S-IdMS mints it. */
async function securityToken(valUserId = 'alice', from: Signer = home, issuer = HOME, clientId = 'val-ue') {
  return (await mintSecurityToken(from, { issuer, partner: server.issuer, clientId, valUserId, lifetime: 60 })).token;
}

/** A variant: any claims and header, signed by `from` with its algorithm. */
function craft(claims: JWTPayload, header: Record<string, unknown> = {}, from: Signer = home) {
  const { alg } = from;
  const t = now();
  return new SignJWT({
    iss: HOME,
    sub: 'alice',
    val_user_id: 'alice',
    aud: [server.issuer, 'val-ue'],
    iat: t,
    exp: t + 60,
    jti: crypto.randomUUID(),
    ...claims,
  })
    .setProtectedHeader({ alg, kid: from.kid, typ: SECURITY_TOKEN_TYP, ...header })
    .sign(from.key);
}

const bearer = (assertion: string, client = ue, extra: Record<string, string> = {}) => oidc.genericGrantRequest(client, JWT_BEARER, { assertion, ...extra });

async function expectRefused(request: Promise<unknown>, error: string, reason: RegExp) {
  await expect(request).rejects.toMatchObject({ error });
  const event = await lastAudit(database.db, ACCEPT);
  expect(event).toMatchObject({ result: 'failure', details: expect.objectContaining({ error }) });
  expect(event.details.reason).toMatch(reason);
  return event;
}

describe('JWT-bearer grant at the partner S-IdMS (RFC 7523)', () => {
  test("a security token becomes an access token for this domain's own VAL services", async () => {
    const assertion = await securityToken();
    const res = await bearer(assertion);
    expect(res.token_type).toBe('bearer');
    expect(res.expires_in).toBe(300);
    expect(res.scope).toBe('3gpp:seal:val_service');
    expect(res.refresh_token).toBeUndefined();
    expect(decodeProtectedHeader(res.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    const { payload } = await jwtVerify(res.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
      issuer: server.issuer,
      audience: 'urn:3gpp:seal',
      typ: 'at+jwt',
    });
    // alice has no credentials here: the services are this domain's mapping of her VAL user ID.
    expect(payload).toMatchObject({ sub: 'alice', client_id: 'val-ue', val_service_ids: ['b-data', 'b-ptt'], scope: '3gpp:seal:val_service' });

    const event = await lastAudit(database.db, ACCEPT);
    expect(event).toMatchObject({ actor: 'val-ue', subject: 'alice', result: 'success', details: { grant: JWT_BEARER, partner: HOME } });
    // The replay store keeps the jti until exp plus the 30 s leeway, when a replay could no longer pass anyway.
    const { jti, exp } = decodeJwt(assertion);
    expect(event.details.jti).toBe(jti);
    const seen = await database.db('seen_security_tokens').where({ issuer: HOME, jti }).first();
    expect(seen.expires_at.getTime()).toBe((exp! + 30) * 1000);
  });

  test('a partner provisioned by X.509 certificate is verified with the certificate key', async () => {
    const res = await bearer(await craft({ iss: HOME_CERT }, {}, homeCert));
    expect((await jwtVerify(res.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)))).payload.sub).toBe('alice');
  });

  test('resource selects another SEAL server audience (RFC 8707)', async () => {
    const res = await bearer(await securityToken(), ue, { resource: 'https://skms.partner.example.org' });
    const { payload } = await jwtVerify(res.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
      audience: 'https://skms.partner.example.org',
    });
    expect(payload.val_service_ids).toEqual(['b-data', 'b-ptt']);
  });

  test('token exchange with subject_token_type jwt is accepted the same way', async () => {
    const res = await oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, { subject_token: await securityToken(), subject_token_type: JWT_TOKEN_TYPE });
    expect(res.issued_token_type).toBe(ACCESS_TOKEN_TYPE);
    expect(res.token_type).toBe('bearer');
    const { payload } = await jwtVerify(res.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { audience: 'urn:3gpp:seal' });
    expect(payload).toMatchObject({ sub: 'alice', val_service_ids: ['b-data', 'b-ptt'] });
    expect((await lastAudit(database.db, ACCEPT)).details.grant).toBe(TOKEN_EXCHANGE);
  });

  test('clock skew: up to 30 s past exp is accepted, beyond is not', async () => {
    const t = now();
    await expect(bearer(await craft({ iat: t - 70, exp: t - 10 }))).resolves.toBeDefined();
    await expectRefused(bearer(await craft({ iat: t - 100, exp: t - 40 })), 'invalid_grant', /expired/);
  });
});

describe('refusals at the partner S-IdMS: invalid_grant, audited', () => {
  test('replay of a security token, through either grant', async () => {
    const assertion = await securityToken();
    await bearer(assertion);
    await expectRefused(bearer(assertion), 'invalid_grant', /replay/);
    await expectRefused(
      oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, { subject_token: assertion, subject_token_type: JWT_TOKEN_TYPE }),
      'invalid_grant',
      /replay/,
    );
  });

  test('concurrent presentations of one token: exactly one wins', async () => {
    const assertion = await securityToken();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => bearer(assertion)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.error)).toEqual(Array(7).fill('invalid_grant'));
  });

  test('a token for another partner', async () => {
    await expectRefused(bearer(await craft({ aud: ['https://idms.partner-c.example.org', 'val-ue'] })), 'invalid_grant', /claim aud/);
  });

  test('a token for another client, or naming more parties', async () => {
    const forVal = await securityToken();
    await expectRefused(bearer(forVal, otherUe), 'invalid_grant', /does not name the presenting client/);
    // The refusal did not spend the token: its own client can still use it once.
    await expect(bearer(forVal)).resolves.toBeDefined();
    // Values of aud other than this IdMS name clients (TS 33.180 table B.8-1); the presenting one must be among them.
    await expectRefused(
      bearer(await craft({ aud: [server.issuer, 'other-ue', 'https://idms.partner-c.example.org'] })),
      'invalid_grant',
      /does not name the presenting client/,
    );
  });

  test('a token signed by an untrusted issuer', async () => {
    await expectRefused(bearer(await securityToken('alice', stranger, STRANGER)), 'invalid_grant', /not a trusted partner/);
  });

  test('a trusted issuer name with a key that is not the provisioned one', async () => {
    // Same kid as the real key, different key: the signature check fails.
    await expectRefused(bearer(await securityToken('alice', stranger, HOME)), 'invalid_grant', /signature invalid/);
    await expectRefused(bearer(await craft({}, { kid: 'unknown-kid' })), 'invalid_grant', /no known key/);
  });

  test('a removed issuer', async () => {
    const removed = 'https://idms.removed.example.org';
    const key = generateSigner('r-1');
    await cliOk(server.env, ['partner', 'add', removed, '--jwks', '-'], JSON.stringify(publicJwksOf(key)));
    await expect(bearer(await craft({ iss: removed }, {}, key))).resolves.toBeDefined();
    await cliOk(server.env, ['partner', 'remove', removed]);
    await expectRefused(bearer(await craft({ iss: removed }, {}, key)), 'invalid_grant', /not a trusted partner/);
  });

  test('alg none', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const t = now();
    const unsecured = `${enc({ alg: 'none', typ: SECURITY_TOKEN_TYP })}.${enc({ iss: HOME, sub: 'alice', val_user_id: 'alice', aud: [server.issuer, 'val-ue'], iat: t, exp: t + 60, jti: crypto.randomUUID() })}.`;
    await expectRefused(bearer(unsecured), 'invalid_grant', /alg none not allowed/);
  });

  test("alg HS256, keyed with the partner's public key (algorithm confusion)", async () => {
    const publicPem = crypto.createPublicKey(home.key).export({ type: 'spki', format: 'pem' });
    const t = now();
    const hs = await new SignJWT({
      iss: HOME,
      sub: 'alice',
      val_user_id: 'alice',
      aud: [server.issuer, 'val-ue'],
      iat: t,
      exp: t + 60,
      jti: crypto.randomUUID(),
    })
      .setProtectedHeader({ alg: 'HS256', kid: home.kid, typ: SECURITY_TOKEN_TYP })
      .sign(new TextEncoder().encode(String(publicPem)));
    await expectRefused(bearer(hs), 'invalid_grant', /alg HS256 not allowed/);
  });

  test('a tampered payload', async () => {
    const genuine = await securityToken('bob');
    const [h, p, s] = genuine.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const tampered = Buffer.from(JSON.stringify({ ...claims, sub: 'alice', val_user_id: 'alice' })).toString('base64url');
    await expectRefused(bearer(`${h}.${tampered}.${s}`), 'invalid_grant', /signature invalid/);
  });

  test('a wrong typ: an access token, or another explicitly typed JWT (JWT and none are accepted: TS 33.180 annex B.8)', async () => {
    await expectRefused(bearer(await craft({}, { typ: 'at+jwt' })), 'invalid_grant', /typ at\+jwt is not/);
    await expectRefused(bearer(await craft({}, { typ: 'application/dpop+jwt' })), 'invalid_grant', /typ application\/dpop\+jwt is not/);
    await expect(bearer(await craft({}, { typ: 'JWT' }))).resolves.toBeDefined();
    await expect(bearer(await craft({}, { typ: undefined }))).resolves.toBeDefined();
  });

  test("time claims: iat or nbf in the future beyond the leeway, lifetime above the partner's limit (default 300 s)", async () => {
    const t = now();
    await expectRefused(bearer(await craft({ iat: t + 45, exp: t + 100 })), 'invalid_grant', /claim iat/);
    await expectRefused(bearer(await craft({ nbf: t + 45 })), 'invalid_grant', /claim nbf/);
    await expectRefused(bearer(await craft({ iat: t, exp: t + 301 })), 'invalid_grant', /lifetime 301 s exceeds 300 s/);
  });

  test('missing or inconsistent claims', async () => {
    await expectRefused(bearer(await craft({ sub: undefined })), 'invalid_grant', /claim sub missing/);
    await expectRefused(bearer(await craft({ val_user_id: 'mallory' })), 'invalid_grant', /val_user_id/);
    await expectRefused(bearer('not.a.jwt'), 'invalid_grant', /malformed/);
    await expectRefused(bearer(`${await craft({})}${'A'.repeat(17 * 1024)}`), 'invalid_grant', /malformed: longer than/);
  });
});

describe('other refusals at the partner S-IdMS', () => {
  test('a VAL user with no VAL service in this domain is access_denied', async () => {
    await expectRefused(bearer(await securityToken('zoe')), 'access_denied', /not provisioned/);
  });

  test('a VAL user disabled in this domain is access_denied', async () => {
    await expectRefused(bearer(await securityToken('dave')), 'access_denied', /disabled/);
  });

  test('a client not registered for the grant is unauthorized_client', async () => {
    await expectRefused(bearer(await securityToken(), plainUe), 'unauthorized_client', /not allowed/);
  });

  test('a missing assertion is invalid_request; an unknown resource invalid_target; an unregistered scope invalid_scope', async () => {
    await expectRefused(bearer(await securityToken(), ue, { scope: 'openid' }), 'invalid_scope', /not allowed for this client/);
    await expectRefused(oidc.genericGrantRequest(ue, JWT_BEARER, {}), 'invalid_request', /assertion/);
    await expectRefused(bearer(await securityToken(), ue, { resource: 'https://nowhere.example.org' }), 'invalid_target', /unknown resource/);
  });

  test('the sweeper removes only replay records past exp plus the leeway', async () => {
    await database.db('seen_security_tokens').insert([
      { issuer: HOME, jti: 'long-gone', expires_at: new Date(Date.now() - 1000) },
      { issuer: HOME, jti: 'still-needed', expires_at: new Date(Date.now() + 60_000) },
    ]);
    expect(await sweepSeenSecurityTokens(database.db)).toBeGreaterThanOrEqual(1);
    expect(await database.db('seen_security_tokens').where({ jti: 'long-gone' }).first()).toBeUndefined();
    expect(await database.db('seen_security_tokens').where({ jti: 'still-needed' }).first()).toBeDefined();
  });
});

/** The audit events of the partner side written while `request` ran (refused or not). */
async function eventsDuring(request: () => Promise<unknown>) {
  const { max } = (await database.db('audit_events').max('id as max').first()) as { max: string | null };
  await request().catch(() => {});
  return database
    .db('audit_events')
    .where({ action: ACCEPT })
    .where('id', '>', max ?? 0)
    .orderBy('id')
    .select('actor', 'subject', 'result', 'details');
}

describe('the eligibility read spends the token and writes the success event (issue 16: one round trip)', () => {
  const accepted = (subject: string, assertion: string, partner = HOME) => [
    { actor: 'val-ue', subject, result: 'success', details: { grant: JWT_BEARER, partner, jti: decodeJwt(assertion).jti } },
  ];
  const refused = (subject: string, assertion: string, error: string, reason: string, partner = HOME) => [
    { actor: 'val-ue', subject, result: 'failure', details: { grant: JWT_BEARER, partner, jti: decodeJwt(assertion).jti, error, reason } },
  ];

  test('a successful grant is one statement', async () => {
    let fewest = Infinity;
    for (let i = 0; i < 5; i++) {
      const assertion = await securityToken();
      const before = statementsExecuted();
      await bearer(assertion);
      fewest = Math.min(fewest, statementsExecuted() - before);
    }
    expect(fewest).toBe(1);
  });

  test('the policy is decided before the replay: a refused user does not spend the token', async () => {
    const assertion = await securityToken('dave');
    const disabled = 'the VAL user is disabled in this domain';
    expect(await eventsDuring(() => bearer(assertion))).toEqual(refused('dave', assertion, 'access_denied', disabled));
    await cliOk(server.env, ['user', 'enable', 'dave']);
    expect(await eventsDuring(() => bearer(assertion))).toEqual(accepted('dave', assertion));
    expect(await eventsDuring(() => bearer(assertion))).toEqual(refused('dave', assertion, 'invalid_grant', 'replay: jti already used'));
    // A spent token of a user disabled since is refused for the user, as the policy comes first.
    await cliOk(server.env, ['user', 'disable', 'dave']);
    expect(await eventsDuring(() => bearer(assertion))).toEqual(refused('dave', assertion, 'access_denied', disabled));
  });

  test("a partner that may not vouch for local users: a local user's token is refused and not spent", async () => {
    await cliOk(server.env, ['user', 'add', 'hank', '--password', 'hank-password-1']);
    await cliOk(server.env, ['service', 'grant', 'b-ptt', 'hank']);
    const assertion = await craft({ iss: HOME_CERT, sub: 'hank', val_user_id: 'hank' }, {}, homeCert);
    const reason = 'the VAL user is a local user of this domain; this partner may not vouch for local users';
    expect(await eventsDuring(() => bearer(assertion))).toEqual(refused('hank', assertion, 'access_denied', reason, HOME_CERT));
    await cliOk(server.env, ['partner', 'update', HOME_CERT, '--allow-local-users']);
    await serversHeardChanges();
    expect(await eventsDuring(() => bearer(assertion))).toEqual(accepted('hank', assertion, HOME_CERT));
    await cliOk(server.env, ['partner', 'update', HOME_CERT, '--no-allow-local-users']);
    await serversHeardChanges();
  });

  test('a partner whose policy lists VAL services: the same decisions, the spend after the read', async () => {
    const listed = 'https://idms.listed.example.org';
    const key = generateSigner('l-1');
    await cliOk(server.env, ['partner', 'add', listed, '--jwks', '-', '--services', 'b-data'], JSON.stringify(publicJwksOf(key)));
    await cliOk(server.env, ['service', 'grant', 'b-ptt', 'walt', '--allow-unknown']);
    await serversHeardChanges();
    const forWalt = await craft({ iss: listed, sub: 'walt', val_user_id: 'walt' }, {}, key);
    const reason = 'none of the VAL services provisioned here for the VAL user is allowed for this partner';
    expect(await eventsDuring(() => bearer(forWalt))).toEqual(refused('walt', forWalt, 'access_denied', reason, listed));
    await cliOk(server.env, ['service', 'grant', 'b-data', 'walt', '--allow-unknown']);
    let issued: string | undefined;
    expect(await eventsDuring(async () => (issued = (await bearer(forWalt)).access_token))).toEqual(accepted('walt', forWalt, listed));
    expect(decodeJwt(issued!).val_service_ids).toEqual(['b-data']);
    expect(await eventsDuring(() => bearer(forWalt))).toEqual(refused('walt', forWalt, 'invalid_grant', 'replay: jti already used', listed));
  });
});
