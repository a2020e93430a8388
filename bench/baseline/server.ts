// Benchmark baseline: a bare oidc-provider 9 with an in-memory adapter, the same keys (ES256 access tokens, RS256 ID tokens), token format and login work as seal-idms.
// It is what the benchmark divides by: our figure over this one shows what our storage and checks cost.
// Run: node bench/baseline/server.ts, with BASELINE_PORT and BASELINE_SETUP (JSON, see BaselineSetup) in the environment.
import crypto from 'node:crypto';
import http from 'node:http';
import { verify } from '@node-rs/argon2';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { MapAdapter } from './adapter.ts';

export type BaselineSetup = {
  issuer: string;
  /** Client metadata, as registered with seal-idms. */
  clients: Record<string, unknown>[];
  /** VAL user ID → argon2id hash (same parameters as seal-idms). */
  users: Record<string, string>;
  /** VAL user ID → VAL service IDs. */
  services: Record<string, string[]>;
  /** Resource indicator → scope; tokens are ES256 JWTs unless listed in opaqueResources. */
  resources: Record<string, string>;
  opaqueResources: string[];
  defaultResource: string;
  /** The partner S-IdMS for the inter-domain grants (same one seal-idms trusts). */
  partnerIssuer: string;
  partnerJwks: JSONWebKeySet;
};

const setup = JSON.parse(process.env.BASELINE_SETUP ?? '{}') as BaselineSetup;
const port = Number(process.env.BASELINE_PORT ?? 0);

const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'baseline-es256' };
// ID tokens are RS256 as seal-idms signs them by default (OIDC Core §3.1.3.7, src/oidc/provider.ts), with a 2048-bit
// key as seal-idms generates (src/oidc/keys.ts): the same signing work on both sides.
const { privateKey: rsaKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
const rsaJwk = { ...(await exportJWK(rsaKey)), alg: 'RS256', use: 'sig', kid: 'baseline-rs256' };
const csrfKey = crypto.randomBytes(32);
const SCOPES = ['openid', 'offline_access', '3gpp:seal:val_service'];

const configuration: Configuration = {
  adapter: MapAdapter,
  clients: setup.clients as unknown as Configuration['clients'],
  jwks: { keys: [jwk, rsaJwk] as NonNullable<Configuration['jwks']>['keys'] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: [...SCOPES, '3gpp:seal:idm:provisioning'],
  claims: { openid: ['sub', 'amr'], '3gpp:seal:val_service': ['val_user_id', 'val_service_ids'] },
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  clientDefaults: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], id_token_signed_response_alg: 'RS256' },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  findAccount: async (_ctx, sub) => {
    const services = setup.services[sub];
    if (!setup.users[sub] || !services?.length) return undefined;
    return { accountId: sub, claims: () => ({ sub, val_user_id: sub, val_service_ids: services }) };
  },
  extraTokenClaims: async (_ctx, token) => {
    if (token.kind !== 'AccessToken' || !('accountId' in token) || !token.accountId) return undefined;
    return { val_service_ids: setup.services[token.accountId] ?? [] };
  },
  // Same implicit consent as seal-idms (src/oidc/provider.ts), so both answer /auth the same way.
  loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
    const { oidc } = ctx;
    if (!oidc.session?.accountId || !oidc.client) return undefined;
    const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId);
    const grant =
      (grantId && (await oidc.provider.Grant.find(grantId))) || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
    for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
      grant.addResourceScope(indicator, [...oidc.requestParamScopes].filter((s) => server.scopes.has(s)).join(' '));
    }
    await grant.save();
    return grant;
  },
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: 300,
    ClientCredentials: 300,
    IdToken: 3600,
    RefreshToken: 14 * 86400,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 14 * 86400,
    Grant: 14 * 86400,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? setup.defaultResource,
      getResourceServerInfo: async (_ctx, indicator) => {
        const scope = setup.resources[indicator];
        if (scope === undefined) throw new Error(`unknown resource ${indicator}`);
        if (setup.opaqueResources.includes(indicator)) return { scope, audience: indicator, accessTokenTTL: 300, accessTokenFormat: 'opaque' };
        return { scope, audience: indicator, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
      },
      useGrantedResource: async () => true,
    },
  },
};

const provider = new Provider(setup.issuer, configuration);
registerFederationGrants(provider);
const handle = provider.callback();

/**
 * Token exchange (home side) and JWT bearer (partner side) reduced to their cryptography and checks, with
 * in-memory state: what remains of seal-idms' grants without storage, auditing and revocation look-ups.
 */
function registerFederationGrants(p: Provider): void {
  const { d: _d, ...publicJwk } = jwk;
  const ownKeys = createLocalJWKSet({ keys: [publicJwk] });
  const partnerKeys = createLocalJWKSet(setup.partnerJwks);
  const seen = new Map<string, number>();
  setInterval(() => {
    const now = Date.now() / 1000;
    for (const [jti, exp] of seen) if (exp < now) seen.delete(jti);
  }, 10_000).unref();

  p.registerGrantType(
    'urn:ietf:params:oauth:grant-type:token-exchange',
    async (ctx) => {
      const params = ctx.oidc.params as Record<string, string | undefined>;
      const { client } = ctx.oidc;
      if (params.subject_token_type !== 'urn:ietf:params:oauth:token-type:access_token') throw new errors.InvalidRequest('unsupported subject_token_type');
      if ((params.audience ?? params.resource) !== setup.partnerIssuer) throw new errors.InvalidTarget('not a partner');
      let subject;
      try {
        ({ payload: subject } = await jwtVerify(params.subject_token ?? '', ownKeys, {
          issuer: setup.issuer,
          typ: 'at+jwt',
          algorithms: ['ES256'],
          requiredClaims: ['jti', 'exp', 'client_id', 'sub'],
        }));
      } catch {
        throw new errors.InvalidGrant('invalid subject_token');
      }
      if (subject.client_id !== client.clientId) throw new errors.InvalidGrant('subject_token was issued to another client');
      if (!setup.services[subject.sub!]?.length) throw new errors.InvalidGrant('not provisioned');
      const iat = Math.floor(Date.now() / 1000);
      const lifetime = Math.min(60, subject.exp! - iat);
      const token = await new SignJWT({ sub: subject.sub, val_user_id: subject.sub, aud: [setup.partnerIssuer, client.clientId], jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'seal-security+jwt', kid: jwk.kid })
        .setIssuer(setup.issuer)
        .setIssuedAt(iat)
        .setExpirationTime(iat + lifetime)
        .sign(privateKey);
      ctx.body = { access_token: token, issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_type: 'N_A', expires_in: lifetime };
    },
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'resource', 'scope'],
    ['audience', 'resource'],
  );

  p.registerGrantType(
    'urn:ietf:params:oauth:grant-type:jwt-bearer',
    async (ctx) => {
      const { client } = ctx.oidc;
      let claims;
      try {
        ({ payload: claims } = await jwtVerify(String(ctx.oidc.params!.assertion ?? ''), partnerKeys, {
          issuer: setup.partnerIssuer,
          audience: setup.issuer,
          typ: 'seal-security+jwt',
          algorithms: ['ES256'],
          clockTolerance: 30,
          maxTokenAge: 60,
          requiredClaims: ['iss', 'sub', 'aud', 'iat', 'exp', 'jti'],
        }));
      } catch {
        throw new errors.InvalidGrant('invalid assertion');
      }
      if (!(claims.aud as string[]).includes(client.clientId)) throw new errors.InvalidGrant('aud');
      if (seen.has(claims.jti!)) throw new errors.InvalidGrant('replay');
      seen.set(claims.jti!, claims.exp! + 30);
      if (!setup.services[claims.sub!]?.length) throw new errors.AccessDenied('not provisioned');
      const info = await configuration.features!.resourceIndicators!.getResourceServerInfo!(ctx, setup.defaultResource, client);
      const token = new p.AccessToken({ accountId: claims.sub!, client, gty: 'jwt-bearer', scope: info.scope } as ConstructorParameters<
        typeof p.AccessToken
      >[0]);
      token.resourceServer = new p.ResourceServer(setup.defaultResource, info);
      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();
      ctx.body = { access_token: value, token_type: token.tokenType, expires_in: token.expiration, scope: token.scope };
    },
    ['assertion', 'scope', 'resource'],
  );
}

// The login form: the same work per login as seal-idms' (CSRF token, argon2id verification), without storage.
const csrf = (uid: string) => crypto.createHmac('sha256', csrfKey).update(`login:${uid}`).digest('base64url');

async function interaction(req: http.IncomingMessage, res: http.ServerResponse, uid: string, action: string | undefined): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET' && !action) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      `<!doctype html><form method="post" action="/interaction/${uid}/login"><input type="hidden" name="csrf" value="${csrf(uid)}"><input name="val_user_id"><input type="password" name="password"><button>Sign in</button></form>`,
    );
    return;
  }
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  const user = form.get('val_user_id') ?? '';
  const hash = setup.users[user];
  const ok = form.get('csrf') === csrf(uid) && hash !== undefined && (await verify(hash, form.get('password') ?? ''));
  if (!ok) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end('The VAL user ID or password is incorrect.');
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user, amr: ['pwd'] }, consent: {} }, { mergeWithLastSubmission: false });
}

const server = http.createServer((req, res) => {
  const m = /^\/interaction\/([\w-]+)(?:\/(login))?$/.exec(req.url ?? '');
  if (!m) {
    void handle(req, res);
    return;
  }
  interaction(req, res, m[1]!, m[2]).catch((err: unknown) => {
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(String(err));
  });
});
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`baseline listening on ${JSON.stringify(server.address())}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
