// Resource servers (RFC 8707): which audiences access tokens may be issued for, with their scopes and signing algorithm.
import { errors, type ResourceServer } from 'oidc-provider';
import { isAbsoluteUri, type Config } from '../config/env.ts';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import type { SigningAlg } from './keys.ts';

export const VAL_SERVICE_SCOPE = '3gpp:seal:val_service';
export const PROVISIONING_SCOPE = '3gpp:seal:idm:provisioning';
export const PROVISIONING_PATH = '/ss-idms-provisioning/v1';
/** TS 29.549 SS_IdmParameterProvisioning: `{apiRoot}/ss-ipp/v1`; its API name doubles as a scope, as 3GPP NF service scopes are named. */
export const SS_IPP_PATH = '/ss-ipp/v1';
export const SS_IPP_SCOPE = 'ss-ipp';

export type ResourceServerRow = {
  identifier: string;
  scope: string;
  signing_alg: SigningAlg;
  access_token_ttl: number | null;
  description: string | null;
};

export function provisioningResource(config: Config): string {
  return `${config.issuer}${PROVISIONING_PATH}`;
}

/** The ss-ipp API's base URL: its RFC 8707 resource indicator and the `aud` of the tokens it accepts. */
export function ssIppResource(config: Config): string {
  return `${config.apiRoot}${SS_IPP_PATH}`;
}

/**
 * The resource of a token request that names none (features.resourceIndicators.defaultResource). TS 29.549 secures
 * ss-ipp with client_credentials and defines no scope, so a VAL server (a client registered for the provisioning
 * scope) asking client_credentials with no scope, with `ss-ipp`, or with `3gpp:seal:idm:provisioning` gets a token
 * for ss-ipp; every other request keeps IDMS_DEFAULT_RESOURCE. Decided from the request and the client alone: no
 * lookup on the token endpoint.
 */
export function defaultResourceFor(
  config: Config,
  params: { grant_type?: unknown; scope?: unknown } | undefined,
  client: { scope?: string } | undefined,
): string {
  if (params?.grant_type === 'client_credentials' && client?.scope?.split(' ').includes(PROVISIONING_SCOPE)) {
    const scopes = typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];
    if (scopes.every((s) => s === SS_IPP_SCOPE || s === PROVISIONING_SCOPE)) return ssIppResource(config);
  }
  return config.defaultResource;
}

/** The RFC 8707 answer for one indicator: built-ins (default resource, provisioning APIs) first, then the table (through `caches`). */
export async function resourceServerInfo(config: Config, db: Db, caches: Caches, indicator: string): Promise<ResourceServer> {
  const jwt = (alg: SigningAlg) => ({ accessTokenFormat: 'jwt' as const, jwt: { sign: { alg } } });
  if (indicator === ssIppResource(config)) {
    return { scope: `${SS_IPP_SCOPE} ${PROVISIONING_SCOPE}`, audience: indicator, accessTokenTTL: config.ttl.accessToken, ...jwt('ES256') };
  }
  if (indicator === provisioningResource(config)) {
    return { scope: PROVISIONING_SCOPE, audience: indicator, accessTokenTTL: config.ttl.accessToken, ...jwt('ES256') };
  }
  // Asked at every token request; held in the process's caches, dropped on any change (src/db/change-feed.ts).
  const row = await caches.read(
    'resource_servers',
    indicator,
    async () => (await db('resource_servers').where({ identifier: indicator }).first()) as ResourceServerRow | undefined,
  );
  if (row) {
    return { scope: row.scope, audience: indicator, accessTokenTTL: row.access_token_ttl ?? config.ttl.accessToken, ...jwt(row.signing_alg) };
  }
  if (indicator === config.defaultResource) {
    return { scope: VAL_SERVICE_SCOPE, audience: indicator, accessTokenTTL: config.ttl.accessToken, ...jwt('ES256') };
  }
  throw new errors.InvalidTarget('unknown resource indicator');
}

/**
 * Client metadata of this project (docs/oidc.md "Clients"). oidc-provider checks a client's `scope` only against the
 * static scopes it knows (OIDC, provisioning), so a resource server's own scopes (`resource add --scope`) a client may
 * be granted are registered in `resource_scope`; the client's registered scope is the union of both.
 * `resource_servers` lists the resource servers (RFC 8707 identifiers) the client itself operates: it may introspect
 * tokens issued for them (RFC 7662 §4).
 */
export const CLIENT_RESOURCE_SCOPE = 'resource_scope';
export const CLIENT_RESOURCE_SERVERS = 'resource_servers';

/** The part of a client (oidc-provider Client instance or stored metadata) these rules read. */
export type ScopedClient = { scope?: string; [CLIENT_RESOURCE_SCOPE]?: unknown; [CLIENT_RESOURCE_SERVERS]?: unknown };

// RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ), at most a few hundred characters in all.
const SCOPE_LIST = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/;

/** extraClientMetadata.validator for the two properties above (oidc-provider calls it on every client it loads). */
export function validateClientResourceMetadata(key: string, value: unknown): void {
  if (value === undefined) return;
  if (key === CLIENT_RESOURCE_SCOPE && (typeof value !== 'string' || value.length > 2048 || !SCOPE_LIST.test(value))) {
    throw new errors.InvalidClientMetadata(`${CLIENT_RESOURCE_SCOPE} must be a space-separated list of scope values`);
  }
  if (key === CLIENT_RESOURCE_SERVERS && (!Array.isArray(value) || value.length > 100 || !value.every((v) => typeof v === 'string' && isAbsoluteUri(v)))) {
    throw new errors.InvalidClientMetadata(`${CLIENT_RESOURCE_SERVERS} must be an array of absolute URIs without a fragment`);
  }
}

/** Everything the client is registered for: its `scope` plus its `resource_scope`. */
export function registeredScopes(client: ScopedClient): Set<string> {
  const extra = typeof client[CLIENT_RESOURCE_SCOPE] === 'string' ? client[CLIENT_RESOURCE_SCOPE] : '';
  return new Set(`${client.scope ?? ''} ${extra}`.split(' ').filter(Boolean));
}

/** The resource servers the client operates (the audiences of the tokens it may introspect besides its own). */
export function servedResources(client: ScopedClient): string[] {
  const value = client[CLIENT_RESOURCE_SERVERS];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/**
 * The RFC 8707 answer for one indicator as one client may use it: granted = requested ∩ the client's registered scope
 * ∩ the resource server's scopes (docs/oidc.md). The resource server's scopes are narrowed to the client's here, so
 * oidc-provider drops the rest wherever it builds a token (authorization, code, refresh, client_credentials); a
 * requested scope the client is not registered for at all is refused with invalid_scope (RFC 6749 §4.1.2.1, §5.2).
 */
export async function resourceServerInfoForClient(
  config: Config,
  db: Db,
  caches: Caches,
  indicator: string,
  client: ScopedClient,
  requested: readonly string[],
): Promise<ResourceServer> {
  const info = await resourceServerInfo(config, db, caches, indicator);
  const allowed = registeredScopes(client);
  const refused = requested.filter((s) => !allowed.has(s));
  if (refused.length) throw new errors.InvalidScope('requested scope is not allowed for this client', refused.join(' '));
  return {
    ...info,
    scope: info.scope
      .split(' ')
      .filter((s) => allowed.has(s))
      .join(' '),
  };
}

export async function addResourceServer(db: Db, row: Omit<ResourceServerRow, 'description'> & { description?: string }): Promise<void> {
  await db('resource_servers')
    .insert({ ...row, description: row.description ?? null })
    .onConflict('identifier')
    .merge();
  // Serving processes drop their cached answers when they hear the trigger's NOTIFY (migration 202611231330).
}

export async function listResourceServers(db: Db): Promise<ResourceServerRow[]> {
  return db('resource_servers').select('identifier', 'scope', 'signing_alg', 'access_token_ttl', 'description').orderBy('identifier');
}

export async function removeResourceServer(db: Db, identifier: string): Promise<boolean> {
  return (await db('resource_servers').where({ identifier }).delete()) > 0;
}
