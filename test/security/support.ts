// Shared fixtures of the security suite: a provisioned deployment, OIDC steps with openid-client, raw HTTP helpers.
import * as oidc from 'openid-client';
import type { JWK } from 'jose';
import { deriveSecrets } from '../../src/config/secret.ts';
import { loadSigningKeys } from '../../src/oidc/keys.ts';
import { keyRetentionSeconds } from '../../src/oidc/keys.ts';
import { Browser } from '../helpers/browser.ts';
import { cliOk } from '../helpers/cli.ts';
import { TEST_SECRET, type TestServer } from '../helpers/server.ts';
import { pkceAuthorizationRequest } from '../helpers/authorize.ts';
import { freePort } from '../helpers/net.ts';
export { freePort };

export const REDIRECT = 'http://127.0.0.1:8123/cb';
export const WEB_REDIRECT = 'http://127.0.0.1:8124/app/cb';
export const SCOPE = 'openid offline_access 3gpp:seal:val_service';
export const PASSWORDS = { alice: 'alice-password-1', bob: 'bob-password-1' } as const;
export const VAL_SERVER_SECRET = 'val-server-secret-1';
export const WEB_SECRET = 'val-web-secret-1';

export type Deployment = {
  server: TestServer;
  /** VAL UE: public client, code + PKCE. */
  ue: oidc.Configuration;
  /** Confidential web client using the code flow (PKCE is required for it too). */
  web: oidc.Configuration;
  /** VAL server: confidential client_credentials client that may introspect. */
  valServer: oidc.Configuration;
};

export const insecure = { execute: [oidc.allowInsecureRequests] };

/** Users alice and bob on VAL service mcptt-1, the three kinds of client, one extra resource server. */
export async function provision(server: TestServer): Promise<Deployment> {
  const env = server.env;
  await cliOk(env, ['user', 'add', 'alice', '--password', PASSWORDS.alice]);
  await cliOk(env, ['user', 'add', 'bob', '--password', PASSWORDS.bob]);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice', 'bob']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT, '--name', 'MCPTT client']);
  await cliOk(env, ['client', 'add', 'val-web', '--secret', WEB_SECRET, '--redirect-uri', WEB_REDIRECT]);
  await cliOk(env, ['client', 'add', 'val-server-1', '--secret', VAL_SERVER_SECRET, '--grant', 'client_credentials']);
  await cliOk(env, ['resource', 'add', 'https://skms.example.org', '--scope', '3gpp:seal:val_service']);
  const issuer = new URL(server.issuer);
  return {
    server,
    ue: await oidc.discovery(issuer, 'val-ue', undefined, oidc.None(), insecure),
    web: await oidc.discovery(issuer, 'val-web', WEB_SECRET, undefined, insecure),
    valServer: await oidc.discovery(issuer, 'val-server-1', VAL_SERVER_SECRET, undefined, insecure),
  };
}

export type AuthRequest = { url: URL; verifier: string; state: string; nonce: string; redirectUri: string };

/** An authorization request with PKCE S256, state and nonce; `extra` overrides or adds parameters. */
export async function authRequest(config: oidc.Configuration, extra: Record<string, string> = {}): Promise<AuthRequest> {
  const redirectUri = config.clientMetadata().client_id === 'val-web' ? WEB_REDIRECT : REDIRECT;
  const req = await pkceAuthorizationRequest(config, redirectUri, { scope: SCOPE, ...extra });
  return { ...req, redirectUri: extra.redirect_uri ?? redirectUri };
}

/** Logs in through the form and returns the callback URL with the request that produced it. */
export async function login(config: oidc.Configuration, user: keyof typeof PASSWORDS, extra: Record<string, string> = {}, browser = new Browser()) {
  const req = await authRequest(config, extra);
  const callback = new URL(await browser.login(req.url, user, PASSWORDS[user], req.redirectUri));
  return { ...req, callback, browser };
}

export async function loginAndRedeem(config: oidc.Configuration, user: keyof typeof PASSWORDS, extra: Record<string, string> = {}) {
  const { callback, verifier, state, nonce } = await login(config, user, extra);
  return oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

/** The server's private signing keys, read from its database the way the server does (to forge "validly signed" edge cases). */
export async function serverSigningKeys(server: TestServer, db: Parameters<typeof loadSigningKeys>[0]): Promise<JWK[]> {
  return (await loadSigningKeys(db, deriveSecrets(TEST_SECRET).keyEncryptionKey, keyRetentionSeconds(server.config))).keys;
}

export function basic(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** POST a form to an endpoint of the server, without following redirects. */
export async function postForm(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
}

export async function introspect(d: Deployment, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await postForm(`${d.server.issuer}/token/introspection`, { token }, { authorization: basic('val-server-1', VAL_SERVER_SECRET) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A free loopback TCP port (bound then released). */

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export type LoginForm = { browser: Browser; loginUrl: string; action: string; csrf: string; req: AuthRequest };

/** Opens an authorization request in `browser` and returns the login form it leads to. */
export async function openLoginForm(config: oidc.Configuration, extra: Record<string, string> = {}, browser = new Browser()): Promise<LoginForm> {
  const req = await authRequest(config, extra);
  const page = await browser.openAuthorization(req.url, req.redirectUri);
  if ('callback' in page) throw new Error('expected a login form, got a callback');
  const action = /<form[^>]*action="([^"]+)"/.exec(page.html)?.[1];
  const csrf = /name="csrf" value="([^"]*)"/.exec(page.html)?.[1];
  if (!action || csrf === undefined) throw new Error('login form not found');
  return { browser, loginUrl: page.loginUrl, action: new URL(action.replace(/&amp;/g, '&'), page.loginUrl).href, csrf, req };
}

/** Submits the login form with exactly `fields` (no defaults), the browser's cookies and extra headers. */
export async function submitLogin(form: LoginForm, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(form.action, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: form.browser.jar.header(), 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields),
  });
  form.browser.jar.store(res);
  return res;
}
