// The `@seal-idms/verify` kit against a running S-IdMS: what a VAL server accepts and refuses, and key rotation.
import http from 'node:http';
import * as oidc from 'openid-client';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import {
  AccessTokenError,
  bearerToken,
  createAccessTokenVerifier,
  IssuerUnavailableError,
  wwwAuthenticate,
  type AccessTokenVerifierOptions,
} from '@seal-idms/verify';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { Browser } from './helpers/browser.ts';
import { pkceAuthorizationRequest } from './helpers/authorize.ts';

const REDIRECT = 'http://127.0.0.1:8124/cb';
const VAL = 'https://val.example.org';
const VAL_SHORT = 'https://val-short.example.org';
const OPTS = { execute: [oidc.allowInsecureRequests] };

let database: TestDatabase;
let server: TestServer;
let other: TestServer;
let ue: oidc.Configuration;
let valServer: oidc.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  // A second S-IdMS on the same database: same signing keys, different issuer.
  other = await startTestServer(database);
  const env = server.env;
  await cliOk(env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(env, ['user', 'add', 'bob', '--password', 'bob-password-1']);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice']);
  await cliOk(env, ['service', 'grant', 'v2x-7', 'alice', 'bob']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  await cliOk(env, ['client', 'add', 'val-server-1', '--secret', 'val-server-secret-1', '--grant', 'client_credentials']);
  await cliOk(env, ['resource', 'add', VAL]);
  await cliOk(env, ['resource', 'add', VAL_SHORT, '--ttl', '3']);
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), OPTS);
  valServer = await oidc.discovery(new URL(server.issuer), 'val-server-1', 'val-server-secret-1', undefined, OPTS);
});

afterAll(async () => {
  await other?.close();
  await server?.close();
  await database?.drop();
});

async function userTokens(idms: TestServer, user: string, password: string, resource = VAL, scope = 'openid 3gpp:seal:val_service') {
  const client = idms === server ? ue : await oidc.discovery(new URL(idms.issuer), 'val-ue', undefined, oidc.None(), OPTS);
  const { url, verifier, state, nonce } = await pkceAuthorizationRequest(client, REDIRECT, { scope, resource });
  const callback = await new Browser().login(url, user, password, REDIRECT);
  return oidc.authorizationCodeGrant(client, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

const verifierFor = (extra: Partial<AccessTokenVerifierOptions> = {}) => createAccessTokenVerifier({ issuer: server.issuer, audience: VAL, ...extra });

async function refusal(promise: Promise<unknown>): Promise<AccessTokenError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof AccessTokenError)) throw new Error(`expected an AccessTokenError, got ${String(err)}`);
  return err;
}

describe('accepted tokens', () => {
  test('a VAL user token for this audience yields the VAL user ID, service IDs, client and scope', async () => {
    const { access_token } = await userTokens(server, 'alice', 'alice-password-1');
    const verify = verifierFor({ requiredValServiceId: 'mcptt-1' });
    const result = await verify(access_token);
    // TS 33.434 A.2.2.2 (issue 13): the granted scopes, openid among them.
    expect(result).toMatchObject({ valUserId: 'alice', valServiceIds: ['mcptt-1', 'v2x-7'], clientId: 'val-ue', scope: ['openid', '3gpp:seal:val_service'] });
    expect(result.claims).toMatchObject({ iss: server.issuer, aud: VAL, sub: 'alice', jti: expect.any(String) });
  });

  test('a client_credentials token has no VAL user, and is refused where a VAL service is required', async () => {
    const { access_token } = await oidc.clientCredentialsGrant(valServer, { resource: VAL });
    expect(await verifierFor()(access_token)).toMatchObject({ valUserId: undefined, valServiceIds: [], clientId: 'val-server-1' });
    const err = await refusal(verifierFor({ requiredValServiceId: 'mcptt-1' })(access_token));
    expect(err).toMatchObject({ code: 'insufficient_scope', status: 403 });
  });

  test('requiredScopes refuses a token without the scope (insufficient_scope with the scope named)', async () => {
    // A login that asked for openid only (a client_credentials request without scope now gets the resource's scopes
    // the client is registered for, RFC 6749 §3.3, issue 13).
    const { access_token } = await userTokens(server, 'alice', 'alice-password-1', VAL, 'openid');
    expect(decodeJwt(access_token).scope).toBe('openid');
    const err = await refusal(verifierFor({ requiredScopes: ['3gpp:seal:val_service'] })(access_token));
    expect(err).toMatchObject({ code: 'insufficient_scope', status: 403 });
    expect(err.wwwAuthenticate('val')).toBe(
      'Bearer realm="val", error="insufficient_scope", error_description="the access token lacks the scope 3gpp:seal:val_service", scope="3gpp:seal:val_service"',
    );
  });
});

describe('refused tokens (RFC 9068 §4)', () => {
  test('an expired token is invalid_token', async () => {
    const { access_token } = await oidc.clientCredentialsGrant(valServer, { resource: VAL_SHORT });
    const { exp, iat } = JSON.parse(Buffer.from(access_token.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number };
    // The resource server's own lifetime (`resource add --ttl 3`): long enough that the first check is not racing expiry.
    expect(exp - iat).toBe(3);
    const verify = createAccessTokenVerifier({ issuer: server.issuer, audience: VAL_SHORT, clockTolerance: 0 });
    await expect(verify(access_token)).resolves.toMatchObject({ clientId: 'val-server-1' });
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    const err = await refusal(verify(access_token));
    expect(err).toMatchObject({ code: 'invalid_token', status: 401, message: 'the access token has expired' });
    expect(err.wwwAuthenticate()).toBe('Bearer error="invalid_token", error_description="the access token has expired"');
  });

  test('a token for another audience is invalid_token', async () => {
    const { access_token } = await userTokens(server, 'alice', 'alice-password-1', 'urn:3gpp:seal');
    const err = await refusal(verifierFor()(access_token));
    expect(err).toMatchObject({ code: 'invalid_token', message: 'the access token is not intended for this server' });
  });

  test('a token from another issuer is invalid_token even when signed with a key the verifier trusts', async () => {
    const { access_token } = await userTokens(other, 'alice', 'alice-password-1');
    const err = await refusal(verifierFor({ jwksUri: `${server.issuer}/jwks` })(access_token));
    expect(err).toMatchObject({ code: 'invalid_token', message: 'the access token was not issued by the expected S-IdMS' });
  });

  test('a user not provisioned for the VAL service is service_not_authorized (403, insufficient_scope on the wire)', async () => {
    const { access_token } = await userTokens(server, 'bob', 'bob-password-1');
    const err = await refusal(verifierFor({ requiredValServiceId: 'mcptt-1' })(access_token));
    expect(err).toMatchObject({ code: 'service_not_authorized', status: 403 });
    expect(wwwAuthenticate(err, 'val')).toBe(
      'Bearer realm="val", error="insufficient_scope", error_description="the VAL user is not authorized for the VAL service mcptt-1"',
    );
    await expect(verifierFor({ requiredValServiceId: 'v2x-7' })(access_token)).resolves.toMatchObject({ valUserId: 'bob' });
  });

  test('an ID token never passes as an access token (typ)', async () => {
    const { id_token } = await userTokens(server, 'alice', 'alice-password-1');
    const err = await refusal(createAccessTokenVerifier({ issuer: server.issuer, audience: 'val-ue' })(id_token!));
    expect(err).toMatchObject({ code: 'invalid_token', message: 'not an RFC 9068 access token (typ must be at+jwt)' });
  });

  test('an algorithm outside the allow-list, a forged signature and garbage are invalid_token', async () => {
    const { access_token } = await userTokens(server, 'alice', 'alice-password-1');
    expect(decodeProtectedHeader(access_token).alg).toBe('ES256');
    expect(await refusal(verifierFor({ algorithms: ['RS256'] })(access_token))).toMatchObject({
      code: 'invalid_token',
      message: 'the access token signature algorithm is not allowed',
    });
    const [h, p] = access_token.split('.');
    const forged = `${h}.${p}.${Buffer.alloc(64).toString('base64url')}`;
    expect(await refusal(verifierFor()(forged))).toMatchObject({ code: 'invalid_token', message: 'the access token signature is invalid' });
    expect(await refusal(verifierFor()('not-a-jwt'))).toMatchObject({ code: 'invalid_token', message: 'the access token is malformed' });
  });
});

describe('key rotation', () => {
  test('after keys rotate, the same verifier instance refetches the JWKS for the new kid and still accepts older tokens', async () => {
    const verify = verifierFor({ requiredValServiceId: 'mcptt-1', jwksCooldown: 0 });
    const before = (await userTokens(server, 'alice', 'alice-password-1')).access_token;
    await expect(verify(before)).resolves.toMatchObject({ valUserId: 'alice' });

    await cliOk(server.env, ['keys', 'rotate']);
    await server.idms.refreshKeys();
    const after = (await userTokens(server, 'alice', 'alice-password-1')).access_token;
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);

    await expect(verify(after)).resolves.toMatchObject({ valUserId: 'alice' });
    await expect(verify(before)).resolves.toMatchObject({ valUserId: 'alice' });
  });
});

describe('transport and headers', () => {
  test('bearerToken: no header is missing_token (no error code on the wire), a malformed one invalid_request', () => {
    const missing = (() => {
      try {
        bearerToken(undefined);
      } catch (e) {
        return e as AccessTokenError;
      }
    })();
    expect(missing).toMatchObject({ code: 'missing_token', status: 401 });
    expect(missing!.wwwAuthenticate('val')).toBe('Bearer realm="val"');
    expect(() => bearerToken('Basic dXNlcjpwYXNz')).toThrow(expect.objectContaining({ code: 'invalid_request', status: 400 }));
    expect(bearerToken('bearer abc.def-ghi_')).toBe('abc.def-ghi_');
  });

  test('an unreachable S-IdMS is IssuerUnavailableError, not a token error; a mismatched discovery issuer too', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const { port } = closed.address() as { port: number };
    await new Promise<void>((r) => closed.close(() => r()));
    const { access_token } = await oidc.clientCredentialsGrant(valServer, { resource: VAL });
    await expect(createAccessTokenVerifier({ issuer: `http://127.0.0.1:${port}`, audience: VAL })(access_token)).rejects.toBeInstanceOf(IssuerUnavailableError);
    await expect(createAccessTokenVerifier({ issuer: `${server.issuer}/`, audience: VAL })(access_token)).rejects.toBeInstanceOf(IssuerUnavailableError);
    await expect(verifierFor({ jwksUri: `http://127.0.0.1:${port}/jwks` })(access_token)).rejects.toBeInstanceOf(IssuerUnavailableError);
  });
});
