// Partner side as another vendor's S-IdMS sees it: security tokens built from TS 33.180 table B.8-1 alone (iss, sub,
// aud, iat, exp; no jti, no val_user_id, typ JWT or none), signed with RS256/ES256/PS256/EdDSA keys provisioned as a
// JWKS or an X.509 certificate, and every refusal of the per-partner policy, each with the error code a client sees.
import crypto from 'node:crypto';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cli, cliOk } from './helpers/cli.ts';
import {
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

// Partner S-IdMS of other vendors, played by the test.
const RSA = 'https://idms.vendor-rsa.example.net'; // RS256 key in a JWKS
const EC = 'https://idms.vendor-ec.example.net'; // ES256 key in an X.509 certificate
const MORE = 'https://idms.vendor-more.example.net'; // PS256 and EdDSA keys in one JWKS
const STRICT = 'https://idms.vendor-strict.example.net'; // ES256, with a restrictive policy
const TRUSTED = 'https://idms.vendor-trusted.example.net'; // ES256, allowed to vouch for local users
const STRICT_TOKEN_ENDPOINT = 'https://idms.vendor-strict.example.net/oauth2/token';
const ACCEPT = 'federation.security_token.accept';

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;
let otherUe: oidc.Configuration;
let thirdUe: oidc.Configuration;
const rsa = generateSigner('rsa-1', 'RS256');
const ec = generateSigner('ec-1', 'ES256');
const ps = generateSigner('ps-1', 'PS256');
const ed = generateSigner('ed-1', 'EdDSA');
const strict = generateSigner('strict-1', 'ES256');
const trusted = generateSigner('trusted-1', 'ES256');
const stranger = generateSigner('rsa-1', 'RS256');

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  const env = server.env;
  // visitor and carol have no credentials here, only this domain's service mapping; lena is a local user.
  await cliOk(env, ['service', 'grant', 'b-ptt', 'visitor', 'lena', '--allow-unknown']);
  await cliOk(env, ['service', 'grant', 'b-data', 'visitor', 'carol', '--allow-unknown']);
  await cliOk(env, ['user', 'add', 'lena', '--password', 'lena-password-1']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--grant', JWT_BEARER, '--grant', TOKEN_EXCHANGE]);
  await cliOk(env, ['client', 'add', 'other-ue', '--public', '--grant', JWT_BEARER]);
  await cliOk(env, ['client', 'add', 'third-ue', '--public', '--grant', JWT_BEARER]);

  // Keys provisioned out of band (TS 33.180 clause 5.1.4.2), as each partner's operator hands them over.
  const dir = tempDir();
  await cliOk(env, ['partner', 'add', RSA, '--jwks', writeTemp(dir, 'rsa.jwks.json', JSON.stringify(publicJwksOf(rsa)))]);
  await cliOk(env, ['partner', 'add', EC, '--cert', selfSignedCertificate(dir, ec.key, 'idms.vendor-ec.example.net')]);
  await cliOk(env, ['partner', 'add', MORE, '--jwks', writeTemp(dir, 'more.jwks.json', JSON.stringify(publicJwksOf(ps, ed)))]);
  await cliOk(env, ['partner', 'add', STRICT, '--jwks', writeTemp(dir, 'strict.jwks.json', JSON.stringify(publicJwksOf(strict)))]);
  await cliOk(env, ['partner', 'add', TRUSTED, '--jwks', writeTemp(dir, 'trusted.jwks.json', JSON.stringify(publicJwksOf(trusted)))]);

  ue = await publicClient(server.issuer, 'val-ue');
  otherUe = await publicClient(server.issuer, 'other-ue');
  thirdUe = await publicClient(server.issuer, 'third-ue');
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const now = () => Math.floor(Date.now() / 1000);
const ISSUERS = new Map<PartnerSigner, string>([
  [rsa, RSA],
  [ec, EC],
  [ps, MORE],
  [ed, MORE],
  [strict, STRICT],
  [trusted, TRUSTED],
  [stranger, 'https://idms.stranger.example.net'],
]);

/**
 * A security token with exactly the claims of TS 33.180 table B.8-1 (iss, sub, aud = [this IdMS, client_id], iat,
 * exp) and header {alg, kid, typ: JWT}; `claims` and `header` override or (with undefined) remove members.
 */
function b81(signer: PartnerSigner, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const t = now();
  const payload = Object.fromEntries(
    Object.entries({ iss: ISSUERS.get(signer), sub: 'visitor', aud: [server.issuer, 'val-ue'], iat: t, exp: t + 60, ...claims }).filter(
      ([, v]) => v !== undefined,
    ),
  );
  const protectedHeader = Object.fromEntries(Object.entries({ alg: signer.alg, kid: signer.kid, typ: 'JWT', ...header }).filter(([, v]) => v !== undefined));
  return new SignJWT(payload).setProtectedHeader(protectedHeader as { alg: string }).sign(signer.key);
}

/** A token shaped as seal-idms itself mints them (typ, jti, val_user_id, 60 s), so only the claim under test is at fault. */
const ours = (signer: PartnerSigner, claims: JWTPayload) =>
  b81(signer, { jti: crypto.randomUUID(), val_user_id: claims.sub ?? 'visitor', ...claims }, { typ: 'seal-security+jwt' });

const bearer = (assertion: string, client = ue, extra: Record<string, string> = {}) => oidc.genericGrantRequest(client, JWT_BEARER, { assertion, ...extra });
const jwks = () => createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
const seen = (issuer: string) => database.db('seen_security_tokens').where({ issuer });

/** The exact error code (HTTP 400, never a 500) and the audited reason. */
async function expectRefused(request: Promise<unknown>, error: string, reason: RegExp) {
  await expect(request).rejects.toMatchObject({ error, status: 400 });
  const event = await lastAudit(database.db, ACCEPT);
  expect(event).toMatchObject({ result: 'failure', details: expect.objectContaining({ error }) });
  expect(event.details.reason).toMatch(reason);
}

/** The access token this server issued, verified with its own JWKS. */
async function accessTokenClaims(res: oidc.TokenEndpointResponse) {
  return (await jwtVerify(res.access_token, jwks(), { issuer: server.issuer, audience: 'urn:3gpp:seal', typ: 'at+jwt' })).payload;
}

describe('accepted: a security token built from TS 33.180 table B.8-1 alone', () => {
  test("RS256 key in a JWKS, typ JWT, no jti, no val_user_id: an access token with this domain's VAL services, once", async () => {
    const assertion = await b81(rsa);
    expect(decodeJwt(assertion)).not.toHaveProperty('jti');
    const res = await bearer(assertion);
    expect(res.refresh_token).toBeUndefined();
    expect(await accessTokenClaims(res)).toMatchObject({ sub: 'visitor', client_id: 'val-ue', val_service_ids: ['b-data', 'b-ptt'] });
    expect(await lastAudit(database.db, ACCEPT)).toMatchObject({ subject: 'visitor', result: 'success', details: { partner: RSA } });
    // Without a jti, the replay store keeps a hash of the token until exp + the 30 s leeway.
    const rows = await seen(RSA);
    expect(rows).toHaveLength(1);
    expect(rows[0].jti).toMatch(/^sha256:[A-Za-z0-9_-]{43}$/);
    expect(rows[0].expires_at.getTime()).toBe((decodeJwt(assertion).exp! + 30) * 1000);
    await expectRefused(bearer(assertion), 'invalid_grant', /replay: token already used/);
  });

  test('ES256 key provisioned as an X.509 certificate, no typ header and no kid', async () => {
    const res = await bearer(await b81(ec, {}, { typ: undefined, kid: undefined }));
    expect(await accessTokenClaims(res)).toMatchObject({ sub: 'visitor', val_service_ids: ['b-data', 'b-ptt'] });
  });

  test('PS256 and EdDSA keys: each verified with its own key', async () => {
    await expect(bearer(await b81(ps, { iss: MORE }))).resolves.toMatchObject({ token_type: 'bearer' });
    await expect(bearer(await b81(ed, { iss: MORE }))).resolves.toMatchObject({ token_type: 'bearer' });
  });

  test('aud naming this IdMS by its token endpoint URL (the B.7.2 resource the client gave its home IdMS)', async () => {
    const tokenEndpoint = ue.serverMetadata().token_endpoint!;
    expect(tokenEndpoint).toBe(`${server.issuer}/token`);
    await expect(bearer(await b81(rsa, { aud: [tokenEndpoint, 'val-ue'] }))).resolves.toMatchObject({ token_type: 'bearer' });
  });

  test('aud naming only this IdMS (no client): any client the policy allows may present it', async () => {
    await expect(bearer(await b81(rsa, { aud: server.issuer }), otherUe)).resolves.toMatchObject({ token_type: 'bearer' });
  });

  test('a jti and a val_user_id equal to sub, when the partner sends them, are fine too', async () => {
    await expect(bearer(await b81(rsa, { jti: crypto.randomUUID(), val_user_id: 'visitor' }))).resolves.toMatchObject({ token_type: 'bearer' });
  });

  test('token exchange with subject_token_type jwt accepts the same token', async () => {
    const res = await oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, {
      subject_token: await b81(ec, {}, { typ: undefined }),
      subject_token_type: JWT_TOKEN_TYPE,
    });
    expect(await accessTokenClaims(res)).toMatchObject({ sub: 'visitor' });
  });

  test('a lifetime of 300 s (the default limit) with iat 30 s ahead (the leeway) is accepted', async () => {
    const t = now();
    await expect(bearer(await b81(rsa, { iat: t + 25, exp: t + 325 }))).resolves.toMatchObject({ token_type: 'bearer' });
  });
});

describe('refused, each with its exact error code', () => {
  test('wrong aud (another IdMS): invalid_grant', async () => {
    await expectRefused(bearer(await b81(rsa, { aud: ['https://idms.someone-else.example.net', 'val-ue'] })), 'invalid_grant', /claim aud/);
  });

  test('aud naming another client: invalid_grant', async () => {
    await expectRefused(bearer(await b81(rsa, { aud: [server.issuer, 'other-ue'] })), 'invalid_grant', /does not name the presenting client/);
  });

  test('unknown iss: invalid_grant', async () => {
    await expectRefused(bearer(await b81(stranger)), 'invalid_grant', /not a trusted partner/);
  });

  test("too long a lifetime: exp - iat above the partner's limit (default 300 s)", async () => {
    const t = now();
    await expectRefused(bearer(await b81(rsa, { iat: t, exp: t + 301 })), 'invalid_grant', /lifetime 301 s exceeds 300 s/);
  });

  test('not yet valid: nbf or iat more than 30 s ahead', async () => {
    const t = now();
    await expectRefused(bearer(await b81(rsa, { nbf: t + 45 })), 'invalid_grant', /claim nbf/);
    await expectRefused(bearer(await b81(rsa, { iat: t + 45, exp: t + 100 })), 'invalid_grant', /claim iat/);
  });

  test('expired beyond the 30 s leeway', async () => {
    const t = now();
    await expectRefused(bearer(await b81(rsa, { iat: t - 100, exp: t - 40 })), 'invalid_grant', /expired/);
  });

  test('replay of a token without jti, also with its signature re-encoded', async () => {
    // Another user than the other tests' ES256 tokens: two tokens with the same claims in the same second are one token.
    const assertion = await b81(ec, { sub: 'carol' }, { typ: undefined, kid: undefined });
    await bearer(assertion);
    await expectRefused(bearer(assertion), 'invalid_grant', /replay/);
    // The spare bits of the signature's last base64url character: another string, the same token (control: it verifies).
    const last = assertion.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const reencoded = assertion.slice(0, -1) + alphabet[alphabet.indexOf(last) ^ 1];
    expect(reencoded).not.toBe(assertion);
    await expect(jwtVerify(reencoded, crypto.createPublicKey(ec.key))).resolves.toBeDefined();
    await expectRefused(bearer(reencoded), 'invalid_grant', /replay/);
  });

  test('replay of a token with a jti, through the other grant', async () => {
    const assertion = await b81(rsa, { jti: crypto.randomUUID() });
    await bearer(assertion);
    await expectRefused(
      oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, { subject_token: assertion, subject_token_type: JWT_TOKEN_TYPE }),
      'invalid_grant',
      /replay: jti already used/,
    );
  });

  test('typ of another kind of JWT (an access token, at+jwt): invalid_grant', async () => {
    await expectRefused(bearer(await b81(rsa, {}, { typ: 'at+jwt' })), 'invalid_grant', /typ at\+jwt is not/);
  });

  test('the algorithm must match the key: RS256 under an EC certificate key, ES256 naming an RSA key', async () => {
    // Signed by a key this partner does not have, with the algorithm of another key type than the provisioned one.
    await expectRefused(bearer(await b81(generateSigner('ec-1', 'RS256'), { iss: EC })), 'invalid_grant', /key does not fit/);
    // The RSA partner's kid with alg ES256 (signature bytes made by an EC key): no provisioned key is an ES256 key.
    const ecSigned = await b81(generateSigner(rsa.kid, 'ES256'), { iss: RSA });
    await expectRefused(bearer(ecSigned), 'invalid_grant', /no known key/);
  });

  test('sub that is not a VAL user ID (over 255 bytes): invalid_grant', async () => {
    await expectRefused(bearer(await b81(rsa, { sub: 'x'.repeat(256) })), 'invalid_grant', /sub is not a valid VAL user ID/);
  });

  test('val_user_id, when sent, naming another user than sub: invalid_grant', async () => {
    await expectRefused(bearer(await b81(rsa, { val_user_id: 'carol' })), 'invalid_grant', /val_user_id differs from sub/);
  });
});

describe('partner policy (partner add|update … , stored in partners.policy)', () => {
  beforeAll(async () => {
    await cliOk(server.env, [
      'partner',
      'update',
      STRICT,
      '--clients',
      'val-ue,other-ue',
      '--services',
      'b-ptt',
      '--max-token-lifetime',
      '120',
      '--alg',
      'ES256',
      '--token-endpoint',
      STRICT_TOKEN_ENDPOINT,
    ]);
  });

  test('partner show prints the policy, and partners.policy holds it', async () => {
    const shown = await cliOk(server.env, ['partner', 'show', STRICT]);
    expect(shown).toContain(`issuer: ${STRICT}`);
    expect(shown).toContain('max token lifetime: 120 s');
    expect(shown).toContain(`token endpoint: ${STRICT_TOKEN_ENDPOINT}`);
    expect(shown).toContain('algorithms: ES256');
    expect(shown).toContain('clients: val-ue, other-ue');
    expect(shown).toContain('services: b-ptt');
    expect(shown).toContain('local users: refused (default)');
    const row = await database.db('partners').where({ issuer: STRICT }).first();
    expect(row.policy).toEqual({
      max_token_lifetime: 120,
      token_endpoint: STRICT_TOKEN_ENDPOINT,
      algorithms: ['ES256'],
      clients: ['val-ue', 'other-ue'],
      services: ['b-ptt'],
    });
    expect(await cliOk(server.env, ['partner', 'show', RSA])).toContain('max token lifetime: 300 s (default)');
  });

  test('a client not allowed by the partner policy: invalid_grant, and the token is not spent', async () => {
    const assertion = await b81(strict, { aud: server.issuer });
    await expectRefused(bearer(assertion, thirdUe), 'invalid_grant', /client third-ue may not present this partner's tokens/);
    await expect(bearer(assertion, otherUe)).resolves.toMatchObject({ token_type: 'bearer' });
  });

  test('a service outside the partner policy: access_denied; the token carries only the allowed services', async () => {
    // carol is provisioned here only for b-data, which this partner's users may not receive.
    await expectRefused(bearer(await b81(strict, { sub: 'carol' })), 'access_denied', /none of the VAL services/);
    expect(await accessTokenClaims(await bearer(await b81(strict)))).toMatchObject({ sub: 'visitor', val_service_ids: ['b-ptt'] });
  });

  test("the partner's own lifetime limit (120 s) applies", async () => {
    const t = now();
    await expectRefused(bearer(await b81(strict, { iat: t, exp: t + 121 })), 'invalid_grant', /lifetime 121 s exceeds 120 s/);
  });

  test('an algorithm outside the partner policy is refused even with the right key', async () => {
    const rsaKeyed = generateSigner('strict-rsa', 'RS256');
    await cliOk(server.env, ['partner', 'update', STRICT, '--jwks', '-'], JSON.stringify(publicJwksOf(strict, rsaKeyed)));
    await expectRefused(bearer(await b81(rsaKeyed, { iss: STRICT })), 'invalid_grant', /alg RS256 not allowed by the partner policy/);
    // Keys replaced, policy kept.
    expect(await cliOk(server.env, ['partner', 'show', STRICT])).toContain('clients: val-ue, other-ue');
  });

  test('update with an empty value restores the default; bad options are refused with one line', async () => {
    await cliOk(server.env, ['partner', 'update', STRICT, '--clients', '']);
    expect(await cliOk(server.env, ['partner', 'show', STRICT])).toContain('clients: any client registered for the grant (default)');
    const checks: [string[], RegExp][] = [
      [['partner', 'update', STRICT, '--max-token-lifetime', '0'], /--max-token-lifetime must be a number of seconds from 1 to 3600/],
      [['partner', 'update', STRICT, '--max-token-lifetime', '86400'], /from 1 to 3600/],
      [['partner', 'update', STRICT, '--alg', 'HS256'], /--alg HS256 is not one of/],
      [['partner', 'update', STRICT, '--token-endpoint', 'ftp://x.example'], /--token-endpoint must be an http\(s\) URL/],
      [['partner', 'update', STRICT, '--token-endpoint', `${server.issuer}/token`], /endpoint of this server/],
      [['partner', 'update', RSA, '--token-endpoint', STRICT_TOKEN_ENDPOINT], /already registered for another partner/],
      [['partner', 'update', STRICT, '--services', 'a b'], /invalid VAL service ID/],
      [['partner', 'update', 'https://never-added.example.net', '--services', 'b-ptt'], /no partner/],
      [['partner', 'show', 'https://never-added.example.net'], /no partner/],
    ];
    for (const [argv, message] of checks) {
      const r = await cli(server.env, argv);
      expect({ argv, code: r.code }).toEqual({ argv, code: 1 });
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('local users of this domain (issue 10 item 11)', () => {
  test('a partner cannot vouch for a local user by default: access_denied', async () => {
    await expectRefused(bearer(await ours(rsa, { sub: 'lena' })), 'access_denied', /local user/);
  });

  test('a partner whose policy allows local users may vouch for them', async () => {
    await expectRefused(bearer(await ours(trusted, { sub: 'lena' })), 'access_denied', /local user/);
    await cliOk(server.env, ['partner', 'update', TRUSTED, '--allow-local-users']);
    expect(await cliOk(server.env, ['partner', 'show', TRUSTED])).toContain('local users: allowed');
    expect(await accessTokenClaims(await bearer(await ours(trusted, { sub: 'lena' })))).toMatchObject({ sub: 'lena', val_service_ids: ['b-ptt'] });
    // … never for one disabled here, and the operator can take it back.
    await cliOk(server.env, ['user', 'disable', 'lena']);
    await expectRefused(bearer(await ours(trusted, { sub: 'lena' })), 'access_denied', /disabled/);
    await cliOk(server.env, ['user', 'enable', 'lena']);
    await cliOk(server.env, ['partner', 'update', TRUSTED, '--no-allow-local-users']);
    await expectRefused(bearer(await ours(trusted, { sub: 'lena' })), 'access_denied', /local user/);
  });
});

describe('NUL bytes in partner tokens are refusals, never a 500 (issue 10 item 4)', () => {
  test('an unsigned assertion whose iss contains NUL', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${enc({ alg: 'ES256', typ: 'seal-security+jwt' })}.${enc({ iss: 'https://idms.vendor\u0000.example.net', sub: 'visitor', aud: [server.issuer, 'val-ue'], iat: now(), exp: now() + 60, jti: 'j' })}.AAAA`;
    await expectRefused(bearer(unsigned), 'invalid_grant', /not a trusted partner/);
  });

  test('NUL in sub of a signed partner token', async () => {
    await expectRefused(bearer(await ours(rsa, { sub: 'vis\u0000itor' })), 'invalid_grant', /sub is not a valid VAL user ID/);
  });

  test('NUL in jti of a signed partner token', async () => {
    await expectRefused(bearer(await ours(rsa, { jti: 'j\u0000ti' })), 'invalid_grant', /jti must be a string/);
  });

  test('a header typ or alg that is a JSON object (not a string) is invalid_grant, never a 500 (fuzzer finding)', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = enc({ iss: 'https://idms.vendor.example.net', sub: 'visitor', aud: [server.issuer, 'val-ue'], iat: now(), exp: now() + 60 });
    await expectRefused(bearer(`${enc({ alg: 'ES256', typ: { toString: '' } })}.${claims}.AAAA`), 'invalid_grant', /typ \{"toString":""\} is not/);
    await expectRefused(bearer(`${enc({ alg: { toString: '' } })}.${claims}.AAAA`), 'invalid_grant', /alg \{"toString":""\} not allowed/);
  });

  test('NUL in resource at the partner side, and in audience at the home side: invalid_request', async () => {
    await expect(bearer(await b81(rsa), ue, { resource: 'urn:x\u0000y' })).rejects.toMatchObject({ error: 'invalid_request', status: 400 });
    await expect(
      oidc.genericGrantRequest(ue, TOKEN_EXCHANGE, {
        subject_token: 'x.y.z',
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        audience: 'https://idms\u0000.example.net',
      }),
    ).rejects.toMatchObject({ error: 'invalid_request', status: 400 });
  });
});

describe('concurrency (RFC 7523 §3: used once)', () => {
  test('20 parallel JWT-bearer requests with one token without jti: exactly one access token', async () => {
    const assertion = await b81(rsa, { sub: 'carol' });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => bearer(assertion)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.error)).toEqual(Array(19).fill('invalid_grant'));
  });
});
