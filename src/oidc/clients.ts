// Registered OAuth clients (VAL clients, VAL servers): stored as oidc-provider Client records in oidc_payloads.
import crypto from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { tableChanged } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { findStoredClient, PostgresAdapter } from './adapter.ts';
import { HASHED_SECRET_PREFIX, type AtRestKeys } from './at-rest.ts';
import { OIDC_SCOPES, STATIC_SCOPES } from './provider.ts';
import { CLIENT_RESOURCE_SCOPE, CLIENT_RESOURCE_SERVERS, VAL_SERVICE_SCOPE } from './resources.ts';

export type ClientSpec = {
  clientId: string;
  secret?: string;
  public: boolean;
  redirectUris: string[];
  grants: string[];
  scope?: string;
  /** Resource servers (RFC 8707 identifiers) this client operates: it may introspect tokens issued for them. */
  resourceServers?: string[];
  name?: string;
};


/**
 * A client's registered scope (`--scope`, space-separated) as metadata: the static scopes in `scope`, a resource
 * server's own scopes in `resource_scope` (docs/oidc.md "Clients"). Tokens get only scopes found here.
 */
export function scopeMetadata(scope: string): { scope: string; [CLIENT_RESOURCE_SCOPE]?: string } {
  const values = [...new Set(scope.split(/\s+/).filter(Boolean))];
  const resourceScopes = values.filter((s) => !STATIC_SCOPES.includes(s));
  return { scope: values.filter((s) => STATIC_SCOPES.includes(s)).join(' '), ...(resourceScopes.length ? { [CLIENT_RESOURCE_SCOPE]: resourceScopes.join(' ') } : {}) };
}

/** The client's whole registered scope, as `client add|update --scope` takes it. */
export function registeredScope(metadata: ClientMetadata): string {
  const extra = metadata[CLIENT_RESOURCE_SCOPE];
  return [metadata.scope ?? '', typeof extra === 'string' ? extra : ''].filter(Boolean).join(' ');
}

export class ClientExistsError extends Error {}
export class InvalidClientError extends Error {}

/** Turns CLI-level choices into client metadata with secure defaults, and generates a secret if needed. */
export function clientMetadata(spec: ClientSpec): ClientMetadata {
  const grants = spec.grants.length ? spec.grants : spec.redirectUris.length ? ['authorization_code', 'refresh_token'] : ['client_credentials'];
  const usesCode = grants.includes('authorization_code');
  if (usesCode && spec.redirectUris.length === 0) throw new InvalidClientError('a client using authorization_code needs at least one --redirect-uri');
  if (spec.public && grants.includes('client_credentials')) throw new InvalidClientError('a public client cannot use client_credentials');
  if (spec.public && spec.secret) throw new InvalidClientError('a public client has no secret');
  // The stored form's marker for a hashed secret (src/oidc/at-rest.ts) cannot be a secret itself.
  if (spec.secret?.startsWith(HASHED_SECRET_PREFIX)) throw new InvalidClientError(`a client secret cannot start with ${HASHED_SECRET_PREFIX}`);
  const defaultScope = usesCode ? [...OIDC_SCOPES].join(' ') : VAL_SERVICE_SCOPE;
  return {
    client_id: spec.clientId,
    ...(spec.public ? { token_endpoint_auth_method: 'none' } : { client_secret: spec.secret ?? crypto.randomBytes(32).toString('base64url'), token_endpoint_auth_method: 'client_secret_basic' }),
    ...(spec.name ? { client_name: spec.name } : {}),
    redirect_uris: spec.redirectUris,
    grant_types: grants,
    response_types: usesCode ? ['code'] : [],
    ...scopeMetadata(spec.scope ?? defaultScope),
    ...(spec.resourceServers?.length ? { [CLIENT_RESOURCE_SERVERS]: spec.resourceServers } : {}),
  };
}

/** `keys`: the secret is stored hashed (or sealed where oidc-provider needs it as a key), src/oidc/at-rest.ts. */
export async function registerClient(db: Db, provider: Provider, metadata: ClientMetadata, keys: AtRestKeys): Promise<void> {
  try {
    await provider.Client.validate(metadata);
  } catch (err) {
    const e = err as { error_description?: string; message: string };
    throw new InvalidClientError(e.error_description ?? e.message);
  }
  const adapter = new PostgresAdapter(db, 'Client', keys);
  if (await adapter.find(metadata.client_id)) throw new ClientExistsError(`client ${metadata.client_id} already exists`);
  await adapter.upsert(metadata.client_id, metadata as never);
}

export type ClientChange = { scope?: string; resourceServers?: string[] };

/** Changes a client's registered scope and/or the resource servers it operates; false when there is no such client. */
export async function updateClient(db: Db, provider: Provider, clientId: string, change: ClientChange, keys: AtRestKeys): Promise<boolean> {
  const adapter = new PostgresAdapter(db, 'Client', keys);
  const current = (await adapter.find(clientId)) as ClientMetadata | undefined;
  if (!current) return false;
  const metadata: ClientMetadata = { ...current };
  if (change.scope !== undefined) {
    delete metadata[CLIENT_RESOURCE_SCOPE];
    Object.assign(metadata, scopeMetadata(change.scope));
  }
  if (change.resourceServers !== undefined) {
    delete metadata[CLIENT_RESOURCE_SERVERS];
    if (change.resourceServers.length) metadata[CLIENT_RESOURCE_SERVERS] = change.resourceServers;
  }
  try {
    await provider.Client.validate(metadata);
  } catch (err) {
    const e = err as { error_description?: string; message: string };
    throw new InvalidClientError(e.error_description ?? e.message);
  }
  await adapter.upsert(clientId, metadata as never);
  return true;
}

/** The client's registered metadata; its secret as stored (hashed or sealed, see src/oidc/at-rest.ts). */
export async function findClient(db: Db, clientId: string): Promise<ClientMetadata | undefined> {
  return findStoredClient(db, clientId);
}

export async function listClients(db: Db): Promise<ClientMetadata[]> {
  const rows = await db('oidc_payloads').where({ kind: 'Client' }).orderBy('id').select('payload');
  return rows.map((r: { payload: ClientMetadata }) => r.payload);
}

export async function removeClient(db: Db, clientId: string): Promise<boolean> {
  const removed = (await db('oidc_payloads').where({ kind: 'Client', id: clientId }).delete()) > 0;
  tableChanged('clients');
  return removed;
}
