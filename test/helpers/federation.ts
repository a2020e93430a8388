// Helpers for the inter-domain tests: interactive login, the grants' URNs, audit look-ups, key files and self-signed certificates.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as oidc from 'openid-client';
import type { Db } from '../../src/db/knex.ts';
import { deriveSecrets } from '../../src/config/secret.ts';
import { loadSigningKeys } from '../../src/oidc/keys.ts';
import { Browser } from './browser.ts';
import { TEST_SECRET } from './server.ts';
import { pkceAuthorizationRequest } from './authorize.ts';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const REDIRECT = 'http://127.0.0.1:8123/cb';

export const insecure = { execute: [oidc.allowInsecureRequests] };

/** `client add` arguments of a public VAL client for the code flow and both inter-domain grants. */
export function federatedClientArgs(clientId: string, redirectUri: string): string[] {
  return [
    'client',
    'add',
    clientId,
    '--public',
    '--redirect-uri',
    redirectUri,
    '--grant',
    'authorization_code',
    '--grant',
    'refresh_token',
    '--grant',
    TOKEN_EXCHANGE,
    '--grant',
    JWT_BEARER,
  ];
}

/** A public VAL client of `issuer` (openid-client configuration from discovery). */
export function publicClient(issuer: string, clientId: string): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(issuer), clientId, undefined, oidc.None(), insecure);
}

/** Code flow with PKCE and an interactive login, as a VAL UE does it. */
export async function login(client: oidc.Configuration, user: string, password: string) {
  const { url, verifier, state, nonce } = await pkceAuthorizationRequest(client, REDIRECT);
  const callback = await new Browser().login(url, user, password, REDIRECT);
  return oidc.authorizationCodeGrant(client, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

/** Token exchange at the home S-IdMS: access token → security token for `partner`. */
export function exchangeForPartner(client: oidc.Configuration, accessToken: string, partner: string, extra: Record<string, string> = {}) {
  return oidc.genericGrantRequest(client, TOKEN_EXCHANGE, { subject_token: accessToken, subject_token_type: ACCESS_TOKEN_TYPE, audience: partner, ...extra });
}

export type AuditRow = { id: number; actor: string; action: string; subject: string | null; result: string; details: Record<string, string> };

/** The newest audit event of an action. */
export async function lastAudit(db: Db, action: string): Promise<AuditRow> {
  return db('audit_events').where({ action }).orderBy('id', 'desc').first();
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'idms-federation-'));
}

export function writeTemp(dir: string, name: string, content: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content, { mode: 0o600 });
  return file;
}

/** A self-signed X.509 certificate for a private key, made with the openssl command line. */
export function selfSignedCertificate(dir: string, privateKey: crypto.KeyObject, cn: string, days = 2): string {
  const keyFile = writeTemp(dir, `${crypto.randomUUID()}.key.pem`, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  const certFile = path.join(dir, `${crypto.randomUUID()}.crt.pem`);
  execFileSync('openssl', ['req', '-x509', '-new', '-key', keyFile, '-sha256', '-subj', `/CN=${cn}`, '-days', String(days), '-out', certFile], {
    stdio: 'pipe',
  });
  return certFile;
}

/** The private key a test server signs with (read from its database with the test secret), to forge tokens it would sign. */
export async function serverSigningKey(db: Db, alg: 'ES256' | 'RS256' = 'ES256'): Promise<{ kid: string; key: crypto.KeyObject }> {
  const { keys } = await loadSigningKeys(db, deriveSecrets(TEST_SECRET).keyEncryptionKey, 3600);
  const jwk = keys.find((k) => k.alg === alg)!;
  return { kid: jwk.kid!, key: crypto.createPrivateKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' }) };
}

/** A partner S-IdMS's signing key as the tests play one: a private KeyObject, its kid and JOSE algorithm. */
export type PartnerSigner = { kid: string; key: crypto.KeyObject; alg: 'ES256' | 'RS256' | 'PS256' | 'EdDSA' };

export function generateSigner(kid: string, alg: PartnerSigner['alg'] = 'ES256'): PartnerSigner {
  const { privateKey } =
    alg === 'ES256'
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? crypto.generateKeyPairSync('ed25519')
        : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, key: privateKey, alg };
}

/** The public JWKS a partner's operator hands over out of band (`partner add --jwks`). */
export function publicJwksOf(...signers: PartnerSigner[]): { keys: crypto.JsonWebKey[] } {
  return { keys: signers.map((s) => ({ ...crypto.createPublicKey(s.key).export({ format: 'jwk' }), kid: s.kid, use: 'sig' })) };
}
