// The measured flows: what one operation of each is, against seal-idms and (where it has one) the baseline.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { mintSecurityToken } from '../src/federation/security-token.ts';
import { clientCredentials, introspect, passwordLogin, RefreshChains, type FlowTarget, type TokenResponse } from './flows.ts';
import { expectStatus, type Operation } from './load.ts';
import { cliOk, type ServerProcess } from './servers.ts';

export type TargetName = 'seal-idms' | 'baseline';

export type Target = FlowTarget & {
  name: TargetName;
  issuer: string;
  server: ServerProcess;
  users: { id: string; password: string }[];
  chains: RefreshChains;
  /** Resource of the client_credentials tokens that get introspected (opaque at the baseline, which cannot introspect JWTs). */
  introspectionResource: string;
};

export type Scenario = {
  key: string;
  title: string;
  concurrency: number;
  targets: TargetName[];
  /** The target figure from the issue, for the report. */
  goal?: string;
  /** Before every measured run (e.g. fresh tokens to introspect). */
  prepare?: (t: Target) => Promise<void>;
  op: (t: Target) => Operation;
};

export const VAL_SCOPE = '3gpp:seal:val_service';
export const SKMS = 'https://skms.bench.example';
export const OPAQUE = 'urn:bench:opaque';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)]!;

/** Fresh access tokens of VAL users (from the refresh chains), e.g. as subject tokens or to introspect. */
async function userAccessTokens(t: Target, n: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) tokens.push((await t.chains.next(t)).access_token);
  return tokens;
}

export function coreScenarios(options: { concurrency: number; loginConcurrency: number }): Scenario[] {
  const introspectionTokens = new Map<TargetName, string[]>();
  const userTokens = new Map<TargetName, string[]>();
  return [
    {
      key: 'login',
      title: 'password login: authorize → login form (CSRF) → code → token, PKCE S256, argon2id m=19 MiB t=2',
      concurrency: options.loginConcurrency,
      targets: ['seal-idms', 'baseline'],
      goal: '≥ 60/s',
      op: (t) => async () => {
        await passwordLogin(t, pick(t.users), `openid ${VAL_SCOPE}`);
      },
    },
    {
      key: 'client_credentials',
      title: 'client_credentials grant, client_secret_basic, ES256 JWT access token for a registered resource',
      concurrency: options.concurrency,
      targets: ['seal-idms', 'baseline'],
      goal: '≥ 2,000/s and ≥ 0.8× baseline',
      op: (t) => async () => {
        await clientCredentials(t, SKMS, VAL_SCOPE);
      },
    },
    {
      key: 'refresh',
      title: 'refresh grant (rotating; each chain always uses its newest refresh token); returns access + ID + refresh token',
      concurrency: options.concurrency,
      targets: ['seal-idms', 'baseline'],
      goal: '≥ 800/s',
      op: (t) => async () => {
        await t.chains.next(t);
      },
    },
    {
      key: 'introspection',
      title: "introspection of a VAL server's client_credentials token by a VAL server (seal-idms: JWT + revocation check; baseline: opaque)",
      concurrency: options.concurrency,
      targets: ['seal-idms', 'baseline'],
      goal: '≥ 4,000/s',
      prepare: async (t) => {
        const tokens = await Promise.all(Array.from({ length: 32 }, () => clientCredentials(t, t.introspectionResource, VAL_SCOPE)));
        introspectionTokens.set(
          t.name,
          tokens.map((r) => r.access_token),
        );
      },
      op: (t) => async () => {
        await introspect(t, pick(introspectionTokens.get(t.name)!));
      },
    },
    {
      key: 'introspection_user',
      title: "introspection of a VAL user's access token (JWT + revocation check + VAL user status)",
      concurrency: options.concurrency,
      targets: ['seal-idms'],
      goal: '≥ 4,000/s',
      prepare: async (t) => {
        userTokens.set(t.name, await userAccessTokens(t, 32));
      },
      op: (t) => async () => {
        await introspect(t, pick(userTokens.get(t.name)!));
      },
    },
  ];
}

/** The inter-domain set-up: a partner S-IdMS (the benchmark holds its signing key) trusted by both servers. */
export type Federation = {
  tokenExchange: boolean;
  jwtBearer: boolean;
  partnerIssuer: string;
  partnerKey: { kid: string; key: crypto.KeyObject };
  partnerJwks: { keys: Record<string, unknown>[] };
};

/** Which inter-domain grants the server advertises (discovery), and a partner for them. */
export async function prepareFederation(origin: string, tmp: string, env: NodeJS.ProcessEnv): Promise<Federation> {
  const meta = (await (await fetch(`${origin}/.well-known/openid-configuration`)).json()) as { grant_types_supported?: string[] };
  const grants = new Set(meta.grant_types_supported ?? []);
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  const key = crypto.createPrivateKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' });
  const { d: _d, ...publicJwk } = jwk;
  const federation: Federation = {
    tokenExchange: grants.has(TOKEN_EXCHANGE),
    jwtBearer: grants.has(JWT_BEARER),
    partnerIssuer: 'https://idms.partner.bench.example',
    partnerKey: { kid: 'partner-bench-1', key },
    partnerJwks: { keys: [{ ...publicJwk, kid: 'partner-bench-1', alg: 'ES256', use: 'sig' }] },
  };
  if (federation.tokenExchange || federation.jwtBearer) {
    const file = path.join(tmp, 'partner.jwks.json');
    await fs.writeFile(file, JSON.stringify(federation.partnerJwks));
    // The benchmark's users are local users here; the partner may vouch for them (the policy check still runs).
    await cliOk(env, ['partner', 'add', federation.partnerIssuer, '--jwks', file, '--allow-local-users']);
  }
  return federation;
}

export function federationScenarios(f: Federation, options: { concurrency: number }): Scenario[] {
  const subjectTokens = new Map<TargetName, string[]>();
  const scenarios: Scenario[] = [];
  if (f.tokenExchange) {
    scenarios.push({
      key: 'token_exchange',
      title: "token exchange at the home S-IdMS (RFC 8693): a VAL user's access token → security token for a partner",
      concurrency: options.concurrency,
      targets: ['seal-idms', 'baseline'],
      goal: '≥ 1,000/s',
      prepare: async (t) => {
        subjectTokens.set(t.name, await userAccessTokens(t, 32));
      },
      op: (t) => async () => {
        const res = await t.http.form('/token', {
          grant_type: TOKEN_EXCHANGE,
          client_id: t.ue.clientId,
          subject_token: pick(subjectTokens.get(t.name)!),
          subject_token_type: ACCESS_TOKEN_TYPE,
          audience: f.partnerIssuer,
        });
        expectStatus(res, 200, 'token exchange');
      },
    });
  }
  if (f.jwtBearer) {
    scenarios.push({
      key: 'jwt_bearer',
      title: "JWT-bearer grant at the partner S-IdMS (RFC 7523): a partner's security token (replay-checked) → access token",
      concurrency: options.concurrency,
      targets: ['seal-idms', 'baseline'],
      goal: '≥ 800/s',
      op: (t) => async (restartClock) => {
        // Minted by the client side (the home S-IdMS's work), so not part of the measured latency.
        const { token } = await mintSecurityToken(f.partnerKey, {
          issuer: f.partnerIssuer,
          partner: t.issuer,
          clientId: t.ue.clientId,
          valUserId: pick(t.users).id,
          lifetime: 60,
        });
        restartClock();
        const res = await t.http.form('/token', { grant_type: JWT_BEARER, client_id: t.ue.clientId, assertion: token });
        expectStatus(res, 200, 'jwt-bearer');
        if (!(JSON.parse(res.body) as TokenResponse).access_token) throw new Error('jwt-bearer: no access token');
      },
    });
  }
  return scenarios;
}
