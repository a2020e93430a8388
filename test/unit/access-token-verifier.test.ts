// accessTokenVerifier remembers the tokens it verified (issue 16): a repeat skips the signature check, yet expiry is
// judged at every use, a changed key set starts empty, and a token it never verified is checked in full.
import { jest } from '@jest/globals';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { accessTokenVerifier } from '../../src/oidc/access-tokens.ts';

const ISSUER = 'https://idms.example.org';

async function signingKey(kid: string): Promise<{ jwk: JWK; privateKey: CryptoKey }> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { jwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' }, privateKey };
}

async function accessToken(key: { privateKey: CryptoKey; jwk: JWK }, claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: 'val-ue', jti: crypto.randomUUID(), sub: 'alice', iat: now, exp: now + 300, iss: ISSUER, ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.jwk.kid })
    .sign(key.privateKey);
}

afterEach(() => {
  jest.restoreAllMocks();
  jest.useRealTimers();
});

test('a token verified once is not signature-checked again, and answers the same claims', async () => {
  const key = await signingKey('k1');
  const verify = accessTokenVerifier(ISSUER, [key.jwk]);
  const token = await accessToken(key);
  const checks = jest.spyOn(crypto.subtle, 'verify');
  const first = await verify(token);
  expect(first).toMatchObject({ sub: 'alice', client_id: 'val-ue' });
  expect(checks).toHaveBeenCalledTimes(1);
  expect(await verify(token)).toEqual(first);
  expect(await verify(token)).toEqual(first);
  expect(checks).toHaveBeenCalledTimes(1);
  // The remembered claims cannot be changed by one caller for the next.
  expect(Object.isFrozen(first)).toBe(true);
});

test('a remembered token is refused once it expires, and a not-yet-valid one until nbf', async () => {
  const key = await signingKey('k1');
  const verify = accessTokenVerifier(ISSUER, [key.jwk]);
  const now = Math.floor(Date.now() / 1000);
  const token = await accessToken(key, { exp: now + 60 });
  expect(await verify(token)).toBeDefined();
  jest.useFakeTimers({ now: (now + 61) * 1000, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  expect(await verify(token)).toBeUndefined();
  jest.useRealTimers();

  // Verified (and remembered) while valid, then presented again at a time before its nbf.
  const early = await accessToken(key, { nbf: now + 30, exp: now + 300 });
  jest.useFakeTimers({ now: (now + 60) * 1000, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  expect(await verify(early)).toBeDefined();
  jest.useRealTimers();
  expect(await verify(early)).toBeUndefined();
});

test('what one key set verified, a verifier of another key set checks in full and refuses', async () => {
  const old = await signingKey('k-old');
  const next = await signingKey('k-next');
  const token = await accessToken(old);
  expect(await accessTokenVerifier(ISSUER, [old.jwk])(token)).toBeDefined();
  expect(await accessTokenVerifier(ISSUER, [next.jwk])(token)).toBeUndefined();
});

test('a forged token (same claims, another key, same kid) is never answered from what was remembered', async () => {
  const key = await signingKey('k1');
  const forger = await signingKey('k1');
  const verify = accessTokenVerifier(ISSUER, [key.jwk]);
  const genuine = await accessToken(key, { jti: 'same-jti' });
  expect(await verify(genuine)).toBeDefined();
  const forged = await accessToken(forger, { jti: 'same-jti' });
  expect(await verify(forged)).toBeUndefined();
  expect(await verify(forged.slice(0, -2) + (forged.endsWith('AA') ? 'BB' : 'AA'))).toBeUndefined();
});
