// Token handling as an attacker sees it: confused token types, forged and malformed JWTs at every endpoint that accepts a
// token, and client authentication failures that must not tell which part was wrong.
import crypto from 'node:crypto';
import * as oidc from 'openid-client';
import { decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { forgeries, signEs256, signerFromJwk } from './forge.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { cliOk } from '../helpers/cli.ts';
import { basic, introspect, loginAndRedeem, postForm, provision, serverSigningKeys, VAL_SERVER_SECRET, type Deployment } from './support.ts';

let database: TestDatabase;
let d: Deployment;
let keys: JWK[];
/** A genuine user access token and ID token, and the claims a forged token copies from them. */
let real: { access: string; id: string; accessClaims: Record<string, unknown>; idClaims: Record<string, unknown> };

beforeAll(async () => {
  database = await createTestDatabase();
  d = await provision(await startTestServer(database));
  keys = await serverSigningKeys(d.server, database.db);
  const tokens = await loginAndRedeem(d.ue, 'alice');
  real = { access: tokens.access_token, id: tokens.id_token!, accessClaims: decodeJwt(tokens.access_token), idClaims: decodeJwt(tokens.id_token!) };
});

afterAll(async () => {
  await d?.server.close();
  await database?.drop();
});

/** The genuine access token's claims with a fresh jti, and the server's own ES256 key. */
const accessClaims = () => ({ ...real.accessClaims, jti: crypto.randomUUID() });
const serverSigner = () => signerFromJwk(keys.find((k) => k.alg === 'ES256')! as crypto.JsonWebKey & { kid: string });
const signWithServerKey = (payload: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  signEs256({ kid: serverSigner().kid, typ: 'at+jwt', ...header }, payload, serverSigner().key);

describe('control: the forging helper builds tokens the server accepts when nothing is wrong', () => {
  // Without this, every "rejected" below could pass because the helper itself is broken.
  test('a token re-signed with the server key and a fresh jti introspects as active', async () => {
    expect((await introspect(d, forgeries(serverSigner(), 'at+jwt', accessClaims).control())).body).toMatchObject({ active: true, sub: 'alice' });
  });

  test('the genuine ID token is accepted as id_token_hint', async () => {
    const res = await fetch(`${d.server.issuer}/session/end?id_token_hint=${real.id}`);
    expect(res.status).toBe(200);
  });
});

describe('forged and malformed JWTs are rejected (RFC 8725 §2–3, RFC 9068 §4)', () => {
  let forged: Record<string, string>;
  beforeAll(() => {
    forged = forgeries(serverSigner(), 'at+jwt', accessClaims).forged;
  });

  test('at the introspection endpoint: active=false for each', async () => {
    for (const [name, token] of Object.entries(forged)) {
      const res = await introspect(d, token);
      expect({ name, status: res.status, body: res.body }).toEqual({ name, status: 200, body: { active: false } });
    }
  });

  test('at the revocation endpoint: nothing is revoked and no error leaks', async () => {
    for (const [name, token] of Object.entries(forged)) {
      const res = await postForm(`${d.server.issuer}/token/revocation`, { token }, { authorization: basic('val-server-1', VAL_SERVER_SECRET) });
      expect({ name, status: res.status }).toEqual({ name, status: 200 });
    }
    expect((await introspect(d, real.access)).body.active).toBe(true);
  });

  test('as a bearer token at userinfo: 401 invalid_token for each', async () => {
    for (const [name, token] of Object.entries(forged)) {
      const res = await fetch(`${d.server.issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
      // Node's own header limit (16 KiB) stops the oversized one before it reaches the endpoint.
      const expected = name.startsWith('an oversized') ? { status: 431, challenge: null } : { status: 401, challenge: expect.stringMatching(/invalid_token/) };
      expect({ name, status: res.status, challenge: res.headers.get('www-authenticate') }).toEqual({ name, ...expected });
    }
  });

  test('as id_token_hint at end_session: refused for each', async () => {
    for (const [name, token] of Object.entries(forged)) {
      const res = await fetch(`${d.server.issuer}/session/end?id_token_hint=${encodeURIComponent(token)}`, { headers: { accept: 'application/json' } });
      if (name.startsWith('an oversized') && res.status === 431) continue;
      // invalid_client when the forged token's aud names no client, invalid_request when it fails validation.
      expect({ name, status: res.status, error: ((await res.json()) as { error?: string }).error }).toEqual({
        name,
        status: 400,
        error: expect.stringMatching(/^invalid_(request|client)$/),
      });
    }
  });

  test('an ID token forged with alg none, HS256, a foreign key, an unknown crit or another typ is refused as id_token_hint', async () => {
    // ID tokens are RS256 unless the client registered another algorithm (issue 13, OIDC Core §3.1.3.7); the forgeries
    // are ES256-based, so the client registers ES256 for this test, as it may.
    await cliOk(d.server.env, ['client', 'update', 'val-ue', '--id-token-alg', 'ES256']);
    try {
      const { forged, control } = forgeries(serverSigner(), 'JWT', () => ({ ...real.idClaims }));
      expect((await fetch(`${d.server.issuer}/session/end?id_token_hint=${control()}`)).status).toBe(200);
      const hints = ['alg none', 'HS256 keyed with the public key (JWK)', 'a known kid but another key', 'an unknown crit header', 'another typ'].map(
        (name) => forged[name]!,
      );
      for (const hint of hints) {
        const res = await fetch(`${d.server.issuer}/session/end?id_token_hint=${hint}`, { headers: { accept: 'application/json' } });
        expect(res.status).toBe(400);
      }
    } finally {
      await cliOk(d.server.env, ['client', 'update', 'val-ue', '--id-token-alg', 'RS256']);
    }
  });
});

describe('ID tokens, access tokens and refresh tokens are not interchangeable (RFC 8725 §3.11, RFC 9068 §2.1)', () => {
  test('the access token is explicitly typed at+jwt and the ID token is not', () => {
    expect(decodeProtectedHeader(real.access).typ).toBe('at+jwt');
    expect(decodeProtectedHeader(real.id).typ).not.toBe('at+jwt');
  });

  test('an ID token presented to introspection is not an active access token', async () => {
    expect((await introspect(d, real.id)).body).toEqual({ active: false });
  });

  test('an ID token presented as a bearer token at userinfo is refused', async () => {
    const res = await fetch(`${d.server.issuer}/me`, { headers: { authorization: `Bearer ${real.id}` } });
    expect(res.status).toBe(401);
  });

  test('an ID token signed with the server key but typed at+jwt still fails as an access token without its claims', async () => {
    const token = await signWithServerKey({ ...real.idClaims });
    expect((await introspect(d, token)).body).toEqual({ active: false });
  });

  test('an access token is refused as id_token_hint, even when its audience is a client ID', async () => {
    // A resource server whose identifier is also a registered client ID: the aud check alone would let it through.
    await cliOk(d.server.env, ['client', 'add', 'https://vals.example.org', '--secret', 'vals-secret-123', '--redirect-uri', 'https://vals.example.org/cb']);
    await cliOk(d.server.env, ['resource', 'add', 'https://vals.example.org', '--scope', '3gpp:seal:val_service']);
    const tokens = await loginAndRedeem(d.ue, 'alice', { resource: 'https://vals.example.org' });
    expect(decodeJwt(tokens.access_token).aud).toBe('https://vals.example.org');
    for (const hint of [real.access, tokens.access_token]) {
      const res = await fetch(`${d.server.issuer}/session/end?id_token_hint=${hint}`, { headers: { accept: 'application/json' } });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
  });

  test('a refresh token presented as a bearer token at userinfo is refused', async () => {
    const tokens = await loginAndRedeem(d.ue, 'alice');
    const res = await fetch(`${d.server.issuer}/me`, { headers: { authorization: `Bearer ${tokens.refresh_token}` } });
    expect(res.status).toBe(401);
  });

  test('an access token presented as a refresh token is refused', async () => {
    await expect(oidc.refreshTokenGrant(d.ue, real.access)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('client authentication failures do not reveal which part was wrong (RFC 6749 §5.2)', () => {
  // Each failure shape is tried with a registered and with an unknown client ID: the answers must be identical,
  // so the token endpoint is no oracle for which client IDs exist or whether the secret was close.
  const shapes: Record<string, (clientId: string) => [Record<string, string>, Record<string, string>]> = {
    'wrong secret (Basic)': (id) => [{}, { authorization: basic(id, 'wrong-secret') }],
    'secret one character off (Basic)': (id) => [{}, { authorization: basic(id, VAL_SERVER_SECRET.slice(0, -1) + 'x') }],
    'empty secret (Basic)': (id) => [{}, { authorization: basic(id, '') }],
    'no credentials, client_id only': (id) => [{ client_id: id }, {}],
    'wrong secret in the body': (id) => [{ client_id: id, client_secret: 'wrong-secret' }, {}],
    'malformed Basic header': (id) => [{}, { authorization: `Basic ${Buffer.from(id).toString('base64')}` }],
  };

  test.each(Object.keys(shapes))('%s: a registered and an unknown client get the same answer', async (shape) => {
    const form = { grant_type: 'client_credentials', resource: 'https://skms.example.org' };
    const answers: string[] = [];
    for (const clientId of ['val-server-1', 'no-such-client']) {
      const [body, headers] = shapes[shape]!(clientId);
      const res = await postForm(`${d.server.issuer}/token`, { ...form, ...body }, headers);
      answers.push(`${res.status} ${await res.text()}`);
    }
    expect(answers[0]).toMatch(/^4\d\d /);
    expect(answers[1]).toBe(answers[0]);
  });

  test('a wrong secret and an unknown client both answer 401 invalid_client "client authentication failed"', async () => {
    const form = { grant_type: 'client_credentials', resource: 'https://skms.example.org' };
    for (const auth of [basic('val-server-1', 'wrong-secret'), basic('no-such-client', VAL_SERVER_SECRET), basic('val-ue', 'anything')]) {
      const res = await postForm(`${d.server.issuer}/token`, form, { authorization: auth });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    }
  });

  test('the same holds at introspection and revocation', async () => {
    for (const path of ['/token/introspection', '/token/revocation']) {
      const bodies = new Set<string>();
      for (const auth of [basic('no-such-client', 'x'), basic('val-server-1', 'wrong-secret')]) {
        const res = await postForm(`${d.server.issuer}${path}`, { token: real.access }, { authorization: auth });
        bodies.add(`${res.status} ${await res.text()}`);
      }
      expect({ path, bodies: [...bodies] }).toEqual({ path, bodies: ['401 {"error":"invalid_client","error_description":"client authentication failed"}'] });
    }
  });
});
