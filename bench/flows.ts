// The protocol flows the benchmark drives, as a client would: login (code + PKCE), refresh, client_credentials, introspection.
import crypto from 'node:crypto';
import { expectStatus, type HttpClient, type HttpResponse } from './load.ts';

export type TokenResponse = { access_token: string; refresh_token?: string; id_token?: string; expires_in: number; token_type: string };

/** What a flow needs to know about a server under test (seal-idms or the baseline). */
export type FlowTarget = {
  http: HttpClient;
  /** A public VAL client (code + PKCE, refresh). */
  ue: { clientId: string; redirectUri: string };
  /** A confidential VAL server (client_credentials, introspection). */
  valServer: { clientId: string; secret: string };
};

export const basicAuth = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

class Cookies {
  readonly #jar = new Map<string, string>();

  store(res: HttpResponse): void {
    for (const line of res.headers['set-cookie'] ?? []) {
      const pair = line.slice(0, line.indexOf(';') >>> 0);
      const eq = pair.indexOf('=');
      const value = pair.slice(eq + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.#jar.delete(pair.slice(0, eq));
      else this.#jar.set(pair.slice(0, eq), value);
    }
  }

  header(): string {
    return [...this.#jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function pathOf(location: string | undefined, what: string): string {
  if (!location) throw new Error(`${what}: no Location`);
  const url = new URL(location, 'http://x');
  return url.pathname + url.search;
}

/**
 * A full password login as a browser + VAL client perform it: authorization request with PKCE S256,
 * the login form (CSRF token), the redirect back with the code, and the code redemption at the token endpoint.
 */
export async function passwordLogin(t: FlowTarget, user: { id: string; password: string }, scope: string): Promise<TokenResponse> {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const cookies = new Cookies();
  const query = new URLSearchParams({
    client_id: t.ue.clientId,
    response_type: 'code',
    redirect_uri: t.ue.redirectUri,
    scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: crypto.randomBytes(8).toString('base64url'),
    nonce: crypto.randomBytes(8).toString('base64url'),
    ...(scope.split(' ').includes('offline_access') ? { prompt: 'consent' } : {}),
  });
  const auth = await t.http.request('GET', `/auth?${query}`);
  expectStatus(auth, 303, 'authorization request');
  cookies.store(auth);
  const loginPath = pathOf(auth.headers.location, 'authorization request');

  const page = await t.http.request('GET', loginPath, { cookie: cookies.header() });
  expectStatus(page, 200, 'login page');
  cookies.store(page);
  const action = /<form[^>]*action="([^"]+)"/.exec(page.body)?.[1]?.replace(/&amp;/g, '&');
  const csrf = /name="csrf" value="([^"]*)"/.exec(page.body)?.[1];
  if (!action || csrf === undefined) throw new Error('login page: no form');

  const submitted = await t.http.form(action, { csrf, val_user_id: user.id, password: user.password }, { cookie: cookies.header() });
  expectStatus(submitted, 303, 'login form');
  cookies.store(submitted);

  const resumed = await t.http.request('GET', pathOf(submitted.headers.location, 'login form'), { cookie: cookies.header() });
  expectStatus(resumed, 303, 'authorization resume');
  const callback = new URL(resumed.headers.location ?? '', 'http://x');
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`authorization resume: no code (${callback.search})`);

  const token = await t.http.form('/token', {
    grant_type: 'authorization_code',
    code,
    redirect_uri: t.ue.redirectUri,
    code_verifier: verifier,
    client_id: t.ue.clientId,
  });
  expectStatus(token, 200, 'code redemption');
  return JSON.parse(token.body) as TokenResponse;
}

/** One refresh (rotating): returns the response, whose refresh_token replaces the one used. */
export async function refresh(t: FlowTarget, refreshToken: string): Promise<TokenResponse> {
  const res = await t.http.form('/token', { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: t.ue.clientId });
  expectStatus(res, 200, 'refresh');
  const body = JSON.parse(res.body) as TokenResponse;
  if (!body.refresh_token || body.refresh_token === refreshToken) throw new Error('refresh: token not rotated');
  return body;
}

export async function clientCredentials(t: FlowTarget, resource: string, scope: string): Promise<TokenResponse> {
  const res = await t.http.form(
    '/token',
    { grant_type: 'client_credentials', resource, scope },
    { authorization: basicAuth(t.valServer.clientId, t.valServer.secret) },
  );
  expectStatus(res, 200, 'client_credentials');
  return JSON.parse(res.body) as TokenResponse;
}

/** RFC 7662 introspection by the VAL server; throws unless the token is active. */
export async function introspect(t: FlowTarget, token: string): Promise<void> {
  const res = await t.http.form('/token/introspection', { token }, { authorization: basicAuth(t.valServer.clientId, t.valServer.secret) });
  expectStatus(res, 200, 'introspection');
  if (!res.body.includes('"active":true')) throw new Error(`introspection: ${res.body.slice(0, 120)}`);
}

/** A pool of refresh-token chains: each use takes a chain, refreshes it, and stores the newest token. */
export class RefreshChains {
  readonly #free: string[];

  constructor(tokens: string[]) {
    this.#free = [...tokens];
  }

  get size(): number {
    return this.#free.length;
  }

  async next(t: FlowTarget): Promise<TokenResponse> {
    const token = this.#free.pop();
    if (token === undefined) throw new Error('no idle refresh chain (more requests in flight than chains)');
    // A failed refresh may have spent the token: that chain ends (the error is counted by the caller).
    const res = await refresh(t, token);
    this.#free.unshift(res.refresh_token!);
    return res;
  }
}
