// Inter-domain user service authorization end to end: two real S-IdMS (domains A and B), trust set up with the CLI both ways.
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import {
  ACCESS_TOKEN_TYPE,
  exchangeForPartner,
  JWT_BEARER,
  JWT_TOKEN_TYPE,
  lastAudit,
  login,
  publicClient,
  REDIRECT,
  selfSignedCertificate,
  serverSigningKey,
  TOKEN_EXCHANGE,
  tempDir,
  writeTemp,
  federatedClientArgs,
} from './helpers/federation.ts';

let dbA: TestDatabase;
let dbB: TestDatabase;
let a: TestServer;
let b: TestServer;
let ueA: oidc.Configuration;
let ueB: oidc.Configuration;
const dir = tempDir();

beforeAll(async () => {
  [dbA, dbB] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  [a, b] = await Promise.all([startTestServer(dbA, { keyRefreshMs: 100 }), startTestServer(dbB, { keyRefreshMs: 100 })]);
  const clientArgs = federatedClientArgs('val-ue', REDIRECT);

  // Domain A: alice's home. Domain B knows alice only through its own service mapping.
  await cliOk(a.env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(a.env, ['service', 'grant', 'a-ptt', 'alice']);
  await cliOk(a.env, clientArgs);
  await cliOk(b.env, ['service', 'grant', 'b-ptt', 'alice', '--allow-unknown']);
  await cliOk(b.env, ['service', 'grant', 'b-data', 'alice', '--allow-unknown']);
  await cliOk(b.env, clientArgs);
  await cliOk(b.env, ['client', 'add', 'val-server-b', '--secret', 'val-server-b-secret-1', '--grant', 'client_credentials']);
  // The other direction: bob's home is B, A maps him to one of its services.
  await cliOk(b.env, ['user', 'add', 'bob', '--password', 'bob-password-1']);
  await cliOk(b.env, ['service', 'grant', 'b-ptt', 'bob']);
  await cliOk(a.env, ['service', 'grant', 'a-visitor', 'bob', '--allow-unknown']);

  // Out-of-band key exchange: A's JWKS through a file, B's piped through stdin.
  const jwksA = writeTemp(dir, 'a.jwks.json', await cliOk(a.env, ['keys', 'export']));
  expect(await cliOk(b.env, ['partner', 'add', a.issuer, '--jwks', jwksA])).toMatch(/^added partner/);
  expect(await cliOk(a.env, ['partner', 'add', b.issuer, '--jwks', '-'], await cliOk(b.env, ['keys', 'export']))).toMatch(/^added partner/);

  ueA = await publicClient(a.issuer, 'val-ue');
  ueB = await publicClient(b.issuer, 'val-ue');
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await Promise.all([dbA?.drop(), dbB?.drop()]);
});

const jwksOf = (server: TestServer) => createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
const bearerAt = (client: oidc.Configuration, assertion: string) => oidc.genericGrantRequest(client, JWT_BEARER, { assertion });

describe('migration of a VAL user from domain A to domain B', () => {
  test("login at A → token exchange at A for B → JWT-bearer at B → B access token with B's VAL services", async () => {
    const atA = await login(ueA, 'alice', 'alice-password-1');
    expect(decodeJwt(atA.access_token).val_service_ids).toEqual(['a-ptt']);

    const exchanged = await exchangeForPartner(ueA, atA.access_token, b.issuer);
    expect(exchanged.issued_token_type).toBe(JWT_TOKEN_TYPE);
    const security = await jwtVerify(exchanged.access_token, jwksOf(a), { issuer: a.issuer, audience: b.issuer, typ: 'seal-security+jwt' });
    expect(security.payload.aud).toEqual([b.issuer, 'val-ue']);

    const atB = await bearerAt(ueB, exchanged.access_token);
    expect(atB.refresh_token).toBeUndefined();
    const { payload, protectedHeader } = await jwtVerify(atB.access_token, jwksOf(b), { issuer: b.issuer, audience: 'urn:3gpp:seal', typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: 'alice', client_id: 'val-ue', val_service_ids: ['b-data', 'b-ptt'] });
    // Signed by B only: A's keys do not verify it.
    await expect(jwtVerify(atB.access_token, jwksOf(a))).rejects.toThrow();
    // A VAL server of domain B introspecting it sees it active, although alice has no credentials in B.
    const valServerB = await oidc.discovery(new URL(b.issuer), 'val-server-b', 'val-server-b-secret-1', undefined, { execute: [oidc.allowInsecureRequests] });
    expect(await oidc.tokenIntrospection(valServerB, atB.access_token)).toMatchObject({ active: true, sub: 'alice', val_service_ids: ['b-data', 'b-ptt'] });

    // Audited on both sides, linked by the security token's jti.
    const jti = security.payload.jti;
    expect(await lastAudit(dbA.db, 'federation.security_token.issue')).toMatchObject({
      subject: 'alice',
      result: 'success',
      details: { partner: b.issuer, jti },
    });
    expect(await lastAudit(dbB.db, 'federation.security_token.accept')).toMatchObject({
      subject: 'alice',
      result: 'success',
      details: { partner: a.issuer, jti },
    });

    // A security token is good for one access token only.
    await expect(bearerAt(ueB, exchanged.access_token)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  test('trust is configured both ways: a user of B migrates to A', async () => {
    const atB = await login(ueB, 'bob', 'bob-password-1');
    const exchanged = await exchangeForPartner(ueB, atB.access_token, a.issuer);
    const atA = await bearerAt(ueA, exchanged.access_token);
    const { payload } = await jwtVerify(atA.access_token, jwksOf(a), { issuer: a.issuer, audience: 'urn:3gpp:seal' });
    expect(payload).toMatchObject({ sub: 'bob', val_service_ids: ['a-visitor'] });
  });

  test('a security token for B is refused by A itself', async () => {
    const atA = await login(ueA, 'alice', 'alice-password-1');
    const exchanged = await exchangeForPartner(ueA, atA.access_token, b.issuer);
    // A does not list itself as a partner, and the token's aud is B.
    await expect(bearerAt(ueA, exchanged.access_token)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('keys provisioned out of band', () => {
  test("key rotation at A: B refuses the new key until A's JWKS is re-provisioned, then accepts it", async () => {
    const atA = await login(ueA, 'alice', 'alice-password-1');
    const beforeRotation = await exchangeForPartner(ueA, atA.access_token, b.issuer);
    const oldKid = decodeProtectedHeader(beforeRotation.access_token).kid;

    await cliOk(a.env, ['keys', 'rotate']);
    await a.idms.refreshKeys();
    const afterRotation = await exchangeForPartner(ueA, atA.access_token, b.issuer);
    expect(decodeProtectedHeader(afterRotation.access_token).kid).not.toBe(oldKid);

    await expect(bearerAt(ueB, afterRotation.access_token)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await lastAudit(dbB.db, 'federation.security_token.accept')).details.reason).toMatch(/no known key/);

    // The out-of-band step: A's operator exports again, B's operator re-runs partner add (keys replaced).
    const jwks = writeTemp(dir, 'a-rotated.jwks.json', await cliOk(a.env, ['keys', 'export']));
    expect(await cliOk(b.env, ['partner', 'add', a.issuer, '--jwks', jwks])).toMatch(/^updated partner/);

    // The refused token was not spent; and the retired key stays exported while its tokens can live.
    await expect(bearerAt(ueB, afterRotation.access_token)).resolves.toMatchObject({ token_type: 'bearer' });
    await expect(bearerAt(ueB, beforeRotation.access_token)).resolves.toMatchObject({ token_type: 'bearer' });
  });

  test('A provisioned at B as an X.509 certificate of its signing key', async () => {
    const { key } = await serverSigningKey(dbA.db, 'ES256');
    const cert = selfSignedCertificate(dir, key, new URL(a.issuer).host);
    expect(await cliOk(b.env, ['partner', 'add', a.issuer, '--cert', cert])).toMatch(/^updated partner .* \(certificate CN=/);
    expect(await cliOk(b.env, ['partner', 'list'])).toMatch(new RegExp(`^${a.issuer.replace(/\./g, '\\.')}\tcertificate`, 'm'));

    const atA = await login(ueA, 'alice', 'alice-password-1');
    const exchanged = await exchangeForPartner(ueA, atA.access_token, b.issuer);
    const atB = await bearerAt(ueB, exchanged.access_token);
    expect((await jwtVerify(atB.access_token, jwksOf(b))).payload.val_service_ids).toEqual(['b-data', 'b-ptt']);
  });
});

describe('the home side names the partner by its token endpoint (TS 33.180 annex B.7.2 resource)', () => {
  test("A accepts B's registered token endpoint as resource or audience; the security token is for B's issuer and the client, and B accepts it", async () => {
    const bTokenEndpoint = ueB.serverMetadata().token_endpoint!;
    const atA = await login(ueA, 'alice', 'alice-password-1');
    const byEndpoint = (name: 'resource' | 'audience') =>
      oidc.genericGrantRequest(ueA, TOKEN_EXCHANGE, { subject_token: atA.access_token, subject_token_type: ACCESS_TOKEN_TYPE, [name]: bTokenEndpoint });
    // Not registered yet: the URL names no partner.
    await expect(byEndpoint('resource')).rejects.toMatchObject({ error: 'invalid_target' });

    await cliOk(a.env, ['partner', 'update', b.issuer, '--token-endpoint', bTokenEndpoint]);
    for (const name of ['resource', 'audience'] as const) {
      const exchanged = await byEndpoint(name);
      // TS 33.180 table B.8-1: aud is the target IdMS and the client; we always name the target by its issuer.
      const { payload } = await jwtVerify(exchanged.access_token, jwksOf(a), { issuer: a.issuer, audience: b.issuer, typ: 'seal-security+jwt' });
      expect(payload.aud).toEqual([b.issuer, 'val-ue']);
      expect(await lastAudit(dbA.db, 'federation.security_token.issue')).toMatchObject({ result: 'success', details: { partner: b.issuer } });
      const atB = await bearerAt(ueB, exchanged.access_token);
      expect((await jwtVerify(atB.access_token, jwksOf(b), { issuer: b.issuer })).payload).toMatchObject({
        sub: 'alice',
        val_service_ids: ['b-data', 'b-ptt'],
      });
    }
  });

  test('at the home side, a subject_token_type other than an access token is invalid_request naming the accepted one', async () => {
    const atA = await login(ueA, 'alice', 'alice-password-1');
    for (const type of [JWT_TOKEN_TYPE, 'urn:ietf:params:oauth:token-type:id_token']) {
      await expect(
        oidc.genericGrantRequest(ueA, TOKEN_EXCHANGE, { subject_token: atA.id_token!, subject_token_type: type, audience: b.issuer }),
      ).rejects.toMatchObject({
        error: 'invalid_request',
        error_description: expect.stringContaining(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`),
      });
    }
  });
});

describe('removing a partner', () => {
  test('stops both directions at once, on the side that removes it', async () => {
    const alice = await login(ueA, 'alice', 'alice-password-1');
    const bob = await login(ueB, 'bob', 'bob-password-1');
    const aliceForB = await exchangeForPartner(ueA, alice.access_token, b.issuer);
    const bobForA = await exchangeForPartner(ueB, bob.access_token, a.issuer);

    await cliOk(a.env, ['partner', 'remove', b.issuer]);
    // Home role: A no longer issues security tokens for B.
    await expect(exchangeForPartner(ueA, alice.access_token, b.issuer)).rejects.toMatchObject({ error: 'invalid_target' });
    // Partner role: A no longer accepts B's security tokens, even one minted before the removal.
    await expect(bearerAt(ueA, bobForA.access_token)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await lastAudit(dbA.db, 'federation.security_token.accept')).details.reason).toMatch(/not a trusted partner/);

    await cliOk(b.env, ['partner', 'remove', a.issuer]);
    await expect(bearerAt(ueB, aliceForB.access_token)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(exchangeForPartner(ueB, bob.access_token, a.issuer)).rejects.toMatchObject({ error: 'invalid_target' });
    expect(await cliOk(b.env, ['partner', 'list'])).toBe('');
  });
});
