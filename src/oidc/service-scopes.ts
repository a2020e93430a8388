// VAL service specific scopes (TS 33.434 annex A, e.g. MCX's 3gpp:mc:ptt_service): registered per VAL service by the
// operator, granted in a VAL user's access tokens only when that user is provisioned for the service.
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { VAL_SERVICE_SCOPE } from './resources.ts';

export type ServiceScopeRow = { val_service_id: string; scope: string };

/** scope → the VAL services that define it. */
export type ServiceScopeMap = ReadonlyMap<string, ReadonlySet<string>>;

// RFC 6749 §3.3 scope-token.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,255}$/;

/** Scopes with a meaning of their own here; a VAL service cannot take one over. */
export function validateServiceScope(scope: string, reserved: readonly string[]): string | undefined {
  if (!SCOPE_TOKEN.test(scope)) return 'a scope is 1 to 255 printable ASCII characters without space, " or \\ (RFC 6749 §3.3)';
  if (reserved.includes(scope)) return `${scope} is not a VAL service scope`;
  return undefined;
}

export async function addServiceScope(db: Db, valServiceId: string, scope: string): Promise<boolean> {
  const rows = await db('val_service_scopes')
    .insert({ val_service_id: valServiceId, scope })
    .onConflict(['val_service_id', 'scope'])
    .ignore()
    .returning('scope');
  // Serving processes drop their cached map when they hear the trigger's NOTIFY (migration 202611291100).
  return rows.length > 0;
}

export async function removeServiceScope(db: Db, valServiceId: string, scope: string): Promise<boolean> {
  return (await db('val_service_scopes').where({ val_service_id: valServiceId, scope }).delete()) > 0;
}

export async function listServiceScopes(db: Db, valServiceId?: string): Promise<ServiceScopeRow[]> {
  const q = db('val_service_scopes').select('val_service_id', 'scope').orderBy(['val_service_id', 'scope']);
  if (valServiceId !== undefined) q.where({ val_service_id: valServiceId });
  return (await q) as ServiceScopeRow[];
}

// The key of the whole table in the resource-server cache; no resource indicator (an absolute URI) looks like it.
const CACHE_KEY = ' val_service_scopes';

/**
 * Every registered VAL service scope, read at most once per change on each instance: asked at every authorization,
 * code and refresh request, and at discovery. The table is small (a few scopes per VAL service).
 */
export async function serviceScopes(db: Db, caches: Caches): Promise<ServiceScopeMap> {
  return caches.read('resource_servers', CACHE_KEY, async () => {
    const map = new Map<string, Set<string>>();
    for (const row of await listServiceScopes(db)) {
      if (!map.has(row.scope)) map.set(row.scope, new Set());
      map.get(row.scope)!.add(row.val_service_id);
    }
    return map;
  });
}

/** The requested VAL service scopes a VAL user may have: those of a VAL service the user is provisioned for. */
export function grantedServiceScopes(requested: readonly string[], userServices: readonly string[], scopes: ServiceScopeMap): string[] {
  return requested.filter((scope) => userServices.some((service) => scopes.get(scope)?.has(service)));
}

/**
 * Discovery lists the registered VAL service scopes in scopes_supported (RFC 8414 §2). oidc-provider's `scopes` is
 * fixed when the provider is built, and services are registered while it runs: the document is completed per request
 * from the cached table instead of rebuilding the provider on every change.
 */
export function advertiseServiceScopes(provider: Provider, db: Db, caches: Caches): void {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route !== 'discovery' || ctx.status !== 200) return;
    const body = ctx.body as { scopes_supported?: string[] } | undefined;
    if (!body || !Array.isArray(body.scopes_supported)) return;
    const registered = [...(await serviceScopes(db, caches)).keys()].filter((s) => !body.scopes_supported!.includes(s)).sort();
    body.scopes_supported = [...body.scopes_supported, ...registered];
  });
}

/** Requests that issue a VAL user's access token from a login: authorization (and its resume), code and refresh grants. */
export function isLoginTokenRequest(ctx: KoaContextWithOIDC): boolean {
  const route = ctx.oidc?.route;
  if (route === 'authorization' || route === 'resume') return true;
  const grantType = ctx.oidc?.params?.grant_type;
  return route === 'token' && (grantType === 'authorization_code' || grantType === 'refresh_token');
}

export type LoginScopes = {
  /** The requested scopes the client's registration decides on (the VAL service scopes are decided by the user's provisioning instead). */
  forRegistration: string[];
  /** Scopes a resource server offers a VAL user's token besides its own: `openid` and the user's VAL service scopes. */
  userScopes: string[];
};

/**
 * TS 33.434 A.2.2.2: a VAL user's access token carries the granted scopes, `openid` and the VAL service specific
 * scopes among them, whatever its audience. A client registered for `openid` may have `openid` in its access tokens;
 * one registered for `3gpp:seal:val_service` may ask for any registered VAL service scope, which the user gets only
 * for a VAL service they are provisioned for (`services` is the user's provisioning, from the request's standing).
 * Before anyone has logged in (the first authorization pass) no VAL service scope is offered yet; the grant is made
 * after the login. Client tokens (client_credentials, JWT bearer, token exchange) never get either.
 */
export async function loginScopes(
  ctx: KoaContextWithOIDC,
  db: Db,
  caches: Caches,
  registered: ReadonlySet<string>,
  requested: readonly string[],
  services: () => Promise<string[] | undefined>,
): Promise<LoginScopes> {
  if (!isLoginTokenRequest(ctx)) return { forRegistration: [...requested], userScopes: [] };
  const scopes = await serviceScopes(db, caches);
  const mayAskServiceScopes = registered.has(VAL_SERVICE_SCOPE);
  const forRegistration = requested.filter((s) => !(mayAskServiceScopes && scopes.has(s)));
  const userScopes = registered.has('openid') ? ['openid'] : [];
  const userServices = mayAskServiceScopes && scopes.size > 0 ? await services() : undefined;
  if (userServices) userScopes.push(...grantedServiceScopes([...scopes.keys()], userServices, scopes));
  return { forRegistration, userScopes };
}
