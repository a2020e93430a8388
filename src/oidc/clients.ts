// Registered OAuth clients (VAL clients, VAL servers): stored as oidc-provider Client records in oidc_payloads.
import crypto from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { tableChanged } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { findStoredClient, PostgresAdapter } from './adapter.ts';
import { HASHED_SECRET_PREFIX, type AtRestKeys } from './at-rest.ts';
import { OIDC_SCOPES } from './provider.ts';
import { VAL_SERVICE_SCOPE } from './resources.ts';

export type ClientSpec = {
  clientId: string;
  secret?: string;
  public: boolean;
  redirectUris: string[];
  grants: string[];
  scope?: string;
  name?: string;
};

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
    scope: spec.scope ?? defaultScope,
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
