// Property-based fuzzing (fast-check) of every endpoint that parses attacker input: no input may cause a 5xx or an
// unhandled rejection. FUZZ_RUNS sets the inputs per property (CI: 2000), FUZZ_SEED replays a failure.
// The server runs in this process: jest fails the running test on any unhandled rejection raised during it (checked
// with a deliberate Promise.reject), and shutdown.test.ts repeats a burst against a real `serve` process, which exits
// on one (Node's default --unhandled-rejections=throw).
import crypto from 'node:crypto';
import fc from 'fast-check';
import { SECURITY_TOKEN_TYP } from '../../src/federation/security-token.ts';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { cliOk } from '../helpers/cli.ts';
import { provisioningToken, valServerClient } from '../helpers/provisioning.ts';
import { JWT_BEARER, TOKEN_EXCHANGE, tempDir, writeTemp } from '../helpers/federation.ts';
import type { ThrottlePolicy } from '../../src/users/throttle.ts';
import { basic, loginAndRedeem, openLoginForm, provision, REDIRECT, serverSigningKeys, VAL_SERVER_SECRET, WEB_SECRET, type Deployment, type LoginForm } from './support.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? (process.env.CI ? 2000 : 1000));
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : crypto.randomInt(2 ** 31);
const RELAXED: ThrottlePolicy = { windowSeconds: 900, userLimit: 100_000, addressLimit: 100_000, lockSeconds: 1, maxLockSeconds: 1 };
const PARTNER = 'https://idms.partner.example.org';
const MCX = 'mcx.example.org';

let database: TestDatabase;
let d: Deployment;
let issuer: string;
let form: LoginForm;
let provisioningBearer: string;
let real: { access: string; refresh: string; id: string };
let serverKey: crypto.KeyObject;
let serverKid: string;
let partnerKey: crypto.KeyObject;

beforeAll(async () => {
  database = await createTestDatabase();
  d = await provision(await startTestServer(database, { throttle: RELAXED }));
  issuer = d.server.issuer;
  const env = d.server.env;
  await cliOk(env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1,mcvideo-2']);
  provisioningBearer = await provisioningToken(await valServerClient(d.server, 'mcx', 'mcx-secret-0123456789'), d.server);
  await cliOk(env, ['client', 'add', 'fed-ue', '--public', '--grant', JWT_BEARER, '--grant', TOKEN_EXCHANGE]);
  const partner = await generateKeyPair('ES256', { extractable: true });
  partnerKey = crypto.createPrivateKey({ key: (await exportJWK(partner.privateKey)) as crypto.JsonWebKey, format: 'jwk' });
  const jwks = { keys: [{ ...(await exportJWK(partner.publicKey)), kid: 'partner-1', use: 'sig' }] };
  await cliOk(env, ['partner', 'add', PARTNER, '--jwks', writeTemp(tempDir(), 'partner.jwks.json', JSON.stringify(jwks))]);
  const tokens = await loginAndRedeem(d.ue, 'alice');
  real = { access: tokens.access_token, refresh: tokens.refresh_token!, id: tokens.id_token! };
  const es256 = (await serverSigningKeys(d.server, database.db)).find((k: JWK) => k.alg === 'ES256')!;
  serverKey = crypto.createPrivateKey({ key: es256 as crypto.JsonWebKey, format: 'jwk' });
  serverKid = es256.kid!;
  form = await openLoginForm(d.ue);
});

afterAll(async () => {
  await d?.server.close();
  await database?.drop();
});

/** Runs a property with the suite's seed; a failure names the seed that replays it. */
async function check<T>(arb: fc.Arbitrary<T>, send: (input: T) => Promise<Response>): Promise<void> {
  const started = Date.now();
  try {
    await fc.assert(
      fc.asyncProperty(arb, async (input) => {
        const res = await send(input);
        const body = await res.text();
        if (res.status >= 500) throw new Error(`HTTP ${res.status}: ${body.slice(0, 300)}`);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: false },
    );
  } catch (err) {
    throw new Error(`fuzzing failed; replay with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}\n${(err as Error).message}`);
  }
  console.info(`${expect.getState().currentTestName}: ${RUNS} inputs in ${Date.now() - started} ms (seed ${SEED})`);
}

// ---- generators -------------------------------------------------------------------------------------------------

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const text = (maxLength = 40) => fc.oneof(fc.string({ maxLength }), fc.string({ unit: 'binary', maxLength }), fc.string({ unit: 'grapheme-ascii', maxLength }));
const huge = fc.integer({ min: 1_000, max: 70_000 }).map((n) => 'A'.repeat(n));
const weirdJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, [], {}, '', 0, -1, 1e308, true, '__proto__', { __proto__: { admin: true } }));
const numeric = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 2 ** 53, 1e20, Number.NaN), fc.string({ maxLength: 12 }));
const now = () => Math.floor(Date.now() / 1000);

function sign(header: Record<string, unknown>, payload: unknown, key: crypto.KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** JWT-shaped strings: random JSON segments, unsigned, signed with a foreign key, or validly signed with odd claims. */
const claimsArb = (iss: string, aud: unknown) =>
  fc.record(
    {
      iss: fc.oneof(fc.constant(iss), text(), weirdJson),
      sub: fc.oneof(fc.constantFrom('alice', 'nobody', ''), text(), weirdJson),
      val_user_id: fc.oneof(fc.constantFrom('alice', 'bob'), text(), weirdJson),
      aud: fc.oneof(fc.constant(aud), fc.constant([aud, 'fed-ue']), text(), weirdJson),
      iat: fc.oneof(fc.constant(now()), numeric),
      exp: fc.oneof(fc.constant(now() + 60), numeric),
      nbf: numeric,
      jti: fc.oneof(fc.uuid(), text(), weirdJson),
      client_id: fc.oneof(fc.constantFrom('val-ue', 'fed-ue', 'mcx'), weirdJson),
      scope: fc.oneof(fc.constantFrom('3gpp:seal:idm:provisioning', '3gpp:seal:val_service'), weirdJson),
      grant_id: weirdJson,
    },
    { requiredKeys: [] },
  );
const headerArb = (kid: string, typ: string) =>
  fc.record(
    {
      alg: fc.oneof(fc.constantFrom('ES256', 'RS256', 'HS256', 'none', 'EdDSA'), weirdJson),
      kid: fc.oneof(fc.constant(kid), weirdJson),
      typ: fc.oneof(fc.constantFrom(typ, 'JWT', 'at+jwt'), weirdJson),
      crit: fc.oneof(fc.constant(['exp']), weirdJson),
      jwk: weirdJson,
      b64: fc.boolean(),
    },
    { requiredKeys: ['alg'] },
  );
const jwtArb = (key: crypto.KeyObject, kid: string, iss: string, aud: string, typ: string) =>
  fc.oneof(
    fc.tuple(weirdJson, weirdJson, text(20)).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${b64(s)}`),
    // Validly signed: the claim checks behind the signature see every odd type and value.
    fc.tuple(headerArb(kid, typ), claimsArb(iss, aud)).map(([h, p]) => sign({ ...h, alg: 'ES256' }, p, key)),
    fc.tuple(headerArb(kid, typ), claimsArb(iss, aud)).map(([h, p]) => `${b64(h)}.${b64(p)}.`),
    fc.tuple(text(200), fc.integer({ min: 0, max: 4 })).map(([s, n]) => Array(n + 1).fill(b64(s)).join('.')),
  );

const tokenArb = () =>
  fc.oneof(
    text(200),
    huge,
    fc.constantFrom(real.access, real.refresh, real.id, provisioningBearer),
    fc.tuple(fc.constantFrom(real.access, real.id, provisioningBearer), fc.nat(), fc.integer({ min: 0, max: 63 })).map(([t, i, bit]) => {
      const chars = [...t];
      const at = i % chars.length;
      chars[at] = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'[bit] ?? 'A';
      return chars.join('');
    }),
    jwtArb(serverKey, serverKid, issuer, 'urn:3gpp:seal', 'at+jwt'),
  );

/** A form body as tuples (repeated names allowed), or raw bytes that are not valid form encoding at all. */
const bodyArb = (names: string[], value: () => fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...names), text(12)), value()), { maxLength: 12 }).map((pairs) => new URLSearchParams(pairs).toString()) },
    { weight: 1, arbitrary: fc.oneof(text(300), fc.constantFrom('%', '%zz', 'a=%E0%A4%A', '&&&==&', 'a=1;b=2')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => new Uint8Array(bytes)) },
  );
const contentTypeArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/x-www-form-urlencoded') },
  { weight: 1, arbitrary: fc.constantFrom('application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded; charset=utf-16', '') },
);
const asciiHeader = fc.string({ unit: 'grapheme-ascii', maxLength: 200 });
const authArb = fc.option(
  fc.oneof(
    fc.constantFrom(basic('val-server-1', VAL_SERVER_SECRET), basic('val-web', WEB_SECRET), basic('mcx', 'mcx-secret-0123456789')),
    fc.tuple(text(20), text(20)).map(([id, secret]) => basic(id, secret)),
    asciiHeader.map((s) => `Basic ${s}`),
    asciiHeader.map((s) => `Bearer ${s}`),
    asciiHeader,
  ),
  { nil: undefined },
);

function post(path: string, body: string | Uint8Array<ArrayBuffer>, contentType: string, headers: Record<string, string | undefined> = {}): Promise<Response> {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries({ 'content-type': contentType || undefined, ...headers })) if (v !== undefined) h[k] = v;
  return fetch(`${issuer}${path}`, { method: 'POST', redirect: 'manual', headers: h, body });
}

// ---- properties -------------------------------------------------------------------------------------------------

test('token endpoint: no parameters, encodings or client credentials cause a 5xx', async () => {
  const names = ['grant_type', 'code', 'code_verifier', 'redirect_uri', 'refresh_token', 'client_id', 'client_secret', 'scope', 'resource', 'audience',
    'subject_token', 'subject_token_type', 'requested_token_type', 'actor_token', 'assertion', 'client_assertion', 'client_assertion_type'];
  const value = () =>
    fc.oneof(
      text(),
      tokenArb(),
      fc.constantFrom('authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE, JWT_BEARER, 'password', 'implicit', REDIRECT,
        'urn:ietf:params:oauth:token-type:access_token', 'urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:id_token',
        'https://skms.example.org', `${issuer}/ss-idms-provisioning/v1`, PARTNER, 'openid offline_access', '3gpp:seal:idm:provisioning', 'val-ue', 'val-server-1'),
    );
  await check(fc.tuple(bodyArb(names, value), contentTypeArb, authArb), ([body, type, auth]) => post('/token', body, type, { authorization: auth }));
});

test('authorization endpoint: no query makes it fail with a 5xx', async () => {
  const names = ['client_id', 'redirect_uri', 'response_type', 'scope', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'prompt', 'max_age',
    'resource', 'request', 'request_uri', 'response_mode', 'claims', 'acr_values', 'id_token_hint', 'login_hint', 'ui_locales', 'display', 'registration'];
  const value = () =>
    fc.oneof(
      text(),
      fc.constantFrom('val-ue', 'val-web', REDIRECT, 'code', 'code id_token', 'token', 'none', 'openid', 'openid offline_access 3gpp:seal:val_service',
        'S256', 'plain', 'login consent', 'form_post', 'fragment', 'query.jwt', '{"id_token":{"acr":{"essential":true}}}', '-1', '1e309', 'https://skms.example.org'),
      fc.constant(real.id),
      jwtArb(serverKey, serverKid, issuer, 'val-ue', 'JWT'),
    );
  // Half the inputs start from a valid request so the fuzzed parameter is reached past the client checks.
  const valid = [['client_id', 'val-ue'], ['redirect_uri', REDIRECT], ['response_type', 'code'], ['scope', 'openid'], ['code_challenge', 'x'.repeat(43)], ['code_challenge_method', 'S256']];
  const query = fc.tuple(fc.boolean(), fc.array(fc.tuple(fc.oneof(fc.constantFrom(...names), text(12)), value()), { maxLength: 8 }), fc.constantFrom('GET', 'POST'));
  await check(query, ([fromValid, pairs, method]) => {
    const params = new URLSearchParams([...(fromValid ? valid : []), ...pairs]);
    return method === 'GET'
      ? fetch(`${issuer}/auth?${params}`, { redirect: 'manual' })
      : post('/auth', params.toString(), 'application/x-www-form-urlencoded');
  });
});

test('login form: no field values, encodings, cookies or interaction IDs cause a 5xx', async () => {
  const names = ['csrf', 'val_user_id', 'password', 'prompt', 'login', 'consent'];
  // A valid csrf now and then so inputs reach the credential check (argon2 makes those the slow ones).
  const value = () => fc.oneof({ weight: 8, arbitrary: fc.oneof(text(), huge) }, { weight: 1, arbitrary: fc.constantFrom(form.csrf, 'alice', 'bob') });
  const target = fc.oneof({ weight: 6, arbitrary: fc.constant(form.action) }, { weight: 1, arbitrary: text(30).map((uid) => `${issuer}/interaction/${encodeURIComponent(uid)}/login`) });
  const cookies = fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: asciiHeader });
  await check(fc.tuple(target, bodyArb(names, value), contentTypeArb, cookies), ([url, body, type, cookie]) =>
    fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': type || 'text/plain', cookie: cookie ?? form.browser.jar.header() }, body }),
  );
  // The interaction survived: the real user can still sign in through the same form.
  const res = await fetch(form.action, {
    method: 'POST', redirect: 'manual',
    headers: { cookie: form.browser.jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: form.csrf, val_user_id: 'alice', password: 'alice-password-1' }),
  });
  expect(res.status).toBe(303);
});

test('introspection, revocation and userinfo: no token string causes a 5xx', async () => {
  const endpoint = fc.constantFrom('/token/introspection', '/token/revocation', '/me');
  const hint = fc.option(fc.oneof(fc.constantFrom('access_token', 'refresh_token', 'id_token'), text(15)), { nil: undefined });
  await check(fc.tuple(endpoint, tokenArb(), hint, authArb), ([path, token, token_type_hint, auth]) => {
    if (path === '/me') {
      const bearer = /^[\x21-\x7e]*$/.test(token) ? token : encodeURIComponent(token);
      return fetch(`${issuer}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
    }
    const fields = new URLSearchParams({ token, ...(token_type_hint !== undefined ? { token_type_hint } : {}) });
    return post(path, fields.toString(), 'application/x-www-form-urlencoded', { authorization: auth ?? basic('val-server-1', VAL_SERVER_SECRET) });
  });
});

test('provisioning API: no JSON body, path or query causes a 5xx', async () => {
  const ids = fc.oneof(fc.constantFrom('mcptt-1', 'mcvideo-2', 'not-in-sla'), text(30));
  const users = fc.array(fc.oneof(fc.constantFrom('alice', 'bob'), text(20), weirdJson), { maxLength: 6 });
  const shaped = fc.record(
    {
      requesterIdentity: fc.oneof(fc.constant(MCX), text(), weirdJson),
      valServiceInfos: fc.oneof(fc.array(fc.record({ valServiceId: fc.oneof(ids, weirdJson), valUserIds: fc.oneof(users, weirdJson) }, { requiredKeys: [] }), { maxLength: 3 }), weirdJson),
      add: fc.oneof(users, weirdJson),
      remove: fc.oneof(users, weirdJson),
    },
    { requiredKeys: [] },
  );
  const body = fc.oneof(shaped.map((v) => JSON.stringify(v)), weirdJson.map((v) => JSON.stringify(v)), text(200), fc.constantFrom('{', '{"a":', '[]'.repeat(5000), '{"__proto__":{"x":1}}'));
  const request = fc.tuple(
    fc.constantFrom('POST', 'PATCH', 'GET', 'DELETE', 'PUT'),
    ids,
    fc.array(fc.tuple(fc.constantFrom('limit', 'cursor', 'x'), text(20)), { maxLength: 3 }),
    body,
    fc.constantFrom('application/json', 'application/merge-patch+json', 'text/plain', 'application/json; charset=latin1', ''),
    fc.oneof({ weight: 8, arbitrary: fc.constant(provisioningBearer) }, { weight: 1, arbitrary: tokenArb() }),
  );
  await check(request, ([method, id, query, json, type, token]) => {
    const path = method === 'POST' ? '/configurations' : `/configurations/${encodeURIComponent(id)}`;
    const headers: Record<string, string> = { authorization: `Bearer ${/^[\x21-\x7e]*$/.test(token) ? token : encodeURIComponent(token)}` };
    if (type) headers['content-type'] = type;
    const hasBody = method !== 'GET' && method !== 'DELETE';
    return fetch(`${issuer}/ss-idms-provisioning/v1${path}?${new URLSearchParams(query)}`, { method, headers, body: hasBody ? json : undefined });
  });
});

test('JWT-bearer assertions and token exchange subject tokens: no JWT causes a 5xx', async () => {
  const assertion = jwtArb(partnerKey, 'partner-1', PARTNER, issuer, SECURITY_TOKEN_TYP);
  const grant = fc.oneof(
    fc.tuple(assertion, fc.constantFrom('fed-ue', 'val-ue', 'nobody')).map(([a, client_id]) => ({ grant_type: JWT_BEARER, assertion: a, client_id })),
    fc.tuple(tokenArb(), fc.constantFrom('urn:ietf:params:oauth:token-type:access_token', 'urn:ietf:params:oauth:token-type:jwt', 'x'), fc.constantFrom(PARTNER, 'https://unknown.example', ''))
      .map(([subject_token, subject_token_type, audience]) => ({ grant_type: TOKEN_EXCHANGE, subject_token, subject_token_type, audience, client_id: 'fed-ue' })),
    fc.tuple(assertion).map(([a]) => ({ grant_type: TOKEN_EXCHANGE, subject_token: a, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', client_id: 'fed-ue' })),
  );
  await check(grant, (fields) => post('/token', new URLSearchParams(fields).toString(), 'application/x-www-form-urlencoded'));
  // Control: the partner path still accepts a well-formed security token after the storm.
  const t = now();
  const good = sign({ alg: 'ES256', kid: 'partner-1', typ: SECURITY_TOKEN_TYP }, { iss: PARTNER, sub: 'alice', val_user_id: 'alice', aud: [issuer, 'fed-ue'], iat: t, exp: t + 60, jti: crypto.randomUUID() }, partnerKey);
  const res = await post('/token', new URLSearchParams({ grant_type: JWT_BEARER, assertion: good, client_id: 'fed-ue' }).toString(), 'application/x-www-form-urlencoded');
  expect(res.status).toBe(200);
});
