// Resource servers (RFC 8707): which audiences access tokens may be issued for, with their scopes and signing algorithm.
import { errors, type ResourceServer } from 'oidc-provider';
import type { Config } from '../config/env.ts';
import { cached, tableChanged } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import type { SigningAlg } from './keys.ts';

export const VAL_SERVICE_SCOPE = '3gpp:seal:val_service';
export const PROVISIONING_SCOPE = '3gpp:seal:idm:provisioning';
export const PROVISIONING_PATH = '/ss-idms-provisioning/v1';

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

/** The RFC 8707 answer for one indicator: built-ins (default resource, provisioning API) first, then the table. */
export async function resourceServerInfo(config: Config, db: Db, indicator: string): Promise<ResourceServer> {
  const jwt = (alg: SigningAlg) => ({ accessTokenFormat: 'jwt' as const, jwt: { sign: { alg } } });
  if (indicator === provisioningResource(config)) {
    return { scope: PROVISIONING_SCOPE, audience: indicator, accessTokenTTL: config.ttl.accessToken, ...jwt('ES256') };
  }
  // Asked at every token request; cached per process and dropped on any change (src/db/change-feed.ts).
  const row = await cached(db, 'resource_servers', indicator, async () => (await db('resource_servers').where({ identifier: indicator }).first()) as ResourceServerRow | undefined);
  if (row) {
    return { scope: row.scope, audience: indicator, accessTokenTTL: row.access_token_ttl ?? config.ttl.accessToken, ...jwt(row.signing_alg) };
  }
  if (indicator === config.defaultResource) {
    return { scope: VAL_SERVICE_SCOPE, audience: indicator, accessTokenTTL: config.ttl.accessToken, ...jwt('ES256') };
  }
  throw new errors.InvalidTarget('unknown resource indicator');
}

export async function addResourceServer(db: Db, row: Omit<ResourceServerRow, 'description'> & { description?: string }): Promise<void> {
  await db('resource_servers')
    .insert({ ...row, description: row.description ?? null })
    .onConflict('identifier')
    .merge();
  tableChanged('resource_servers');
}

export async function listResourceServers(db: Db): Promise<ResourceServerRow[]> {
  return db('resource_servers').select('identifier', 'scope', 'signing_alg', 'access_token_ttl', 'description').orderBy('identifier');
}

export async function removeResourceServer(db: Db, identifier: string): Promise<boolean> {
  const removed = (await db('resource_servers').where({ identifier }).delete()) > 0;
  tableChanged('resource_servers');
  return removed;
}
