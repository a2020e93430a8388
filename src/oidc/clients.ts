// Registered OAuth clients (VAL clients, VAL servers): stored as oidc-provider Client records, through the adapter's
// store (src/oidc/adapter.ts); and the operator's client use cases (add, show, list, update, rotate-secret, remove),
// each recording its audit event.
import crypto from 'node:crypto';
import { recordAudit } from '../audit/store.ts';
import type { ClientMetadata } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { NO_CACHE, type Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { deleteStoredClient, findStoredClient, listStoredClients, PostgresAdapter } from './adapter.ts';
import { HASHED_SECRET_PREFIX, type AtRestKeys } from './at-rest.ts';
import { OIDC_SCOPES, STATIC_SCOPES } from './provider.ts';
import { CLIENT_RESOURCE_SCOPE, CLIENT_RESOURCE_SERVERS, VAL_SERVICE_SCOPE } from './resources.ts';
import { ID_TOKEN_ALGS, type IdTokenAlg } from './keys.ts';

export type ClientSpec = {
  clientId: string;
  secret?: string;
  public: boolean;
  redirectUris: string[];
  /** Where RP-Initiated Logout may send the person afterwards (OIDC RP-Initiated Logout 1.0 §3.1, exact match). */
  postLogoutRedirectUris?: string[];
  grants: string[];
  scope?: string;
  /** Resource servers (RFC 8707 identifiers) this client operates: it may introspect tokens issued for them. */
  resourceServers?: string[];
  name?: string;
  /** id_token_signed_response_alg; unset: RS256 (OIDC Core §3.1.3.7, the provider's default). */
  idTokenAlg?: string;
};

/** `--id-token-alg`: one of the algorithms the server keeps a key for (src/oidc/keys.ts). */
export function idTokenAlgMetadata(alg: string | undefined): { id_token_signed_response_alg?: IdTokenAlg } {
  if (alg === undefined) return {};
  if (!(ID_TOKEN_ALGS as readonly string[]).includes(alg))
    throw new InvalidClientError(`the ID token algorithm must be one of ${ID_TOKEN_ALGS.join(', ')}, got "${alg.slice(0, 40)}"`);
  return { id_token_signed_response_alg: alg as IdTokenAlg };
}

/**
 * A client's registered scope (`--scope`, space-separated) as metadata: the static scopes in `scope`, a resource
 * server's own scopes in `resource_scope` (docs/oidc.md "Clients"). Tokens get only scopes found here.
 */
export function scopeMetadata(scope: string): { scope: string; [CLIENT_RESOURCE_SCOPE]?: string } {
  const values = [...new Set(scope.split(/\s+/).filter(Boolean))];
  const resourceScopes = values.filter((s) => !STATIC_SCOPES.includes(s));
  return {
    scope: values.filter((s) => STATIC_SCOPES.includes(s)).join(' '),
    ...(resourceScopes.length ? { [CLIENT_RESOURCE_SCOPE]: resourceScopes.join(' ') } : {}),
  };
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
    ...(spec.public
      ? { token_endpoint_auth_method: 'none' }
      : { client_secret: spec.secret ?? crypto.randomBytes(32).toString('base64url'), token_endpoint_auth_method: 'client_secret_basic' }),
    ...(spec.name ? { client_name: spec.name } : {}),
    redirect_uris: spec.redirectUris,
    ...(spec.postLogoutRedirectUris?.length ? { post_logout_redirect_uris: spec.postLogoutRedirectUris } : {}),
    grant_types: grants,
    response_types: usesCode ? ['code'] : [],
    ...scopeMetadata(spec.scope ?? defaultScope),
    ...(spec.resourceServers?.length ? { [CLIENT_RESOURCE_SERVERS]: spec.resourceServers } : {}),
    ...idTokenAlgMetadata(spec.idTokenAlg),
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

export type ClientChange = {
  scope?: string;
  resourceServers?: string[];
  idTokenAlg?: string;
  /** Replaces the redirect URIs (exact match, RFC 9700 §2.1). */
  redirectUris?: string[];
  /** Replaces the post-logout redirect URIs (OIDC RP-Initiated Logout 1.0 §3.1); [] removes them. */
  postLogoutRedirectUris?: string[];
  /** Replaces the grant types; response_types follow (code with authorization_code, none otherwise). */
  grants?: string[];
  /** The display name; '' removes it. */
  name?: string;
};

/** Changes a client's registered metadata (see ClientChange); false when there is no such client. */
export async function updateClient(db: Db, provider: Provider, clientId: string, change: ClientChange, keys: AtRestKeys): Promise<boolean> {
  const adapter = new PostgresAdapter(db, 'Client', keys);
  const current = (await adapter.find(clientId)) as ClientMetadata | undefined;
  if (!current) return false;
  const metadata: ClientMetadata = { ...current };
  if (change.redirectUris !== undefined) metadata.redirect_uris = change.redirectUris;
  if (change.postLogoutRedirectUris !== undefined) {
    if (change.postLogoutRedirectUris.length) metadata.post_logout_redirect_uris = change.postLogoutRedirectUris;
    else delete metadata.post_logout_redirect_uris;
  }
  if (change.grants !== undefined) {
    if (change.grants.length === 0) throw new InvalidClientError('a client needs at least one grant type');
    if (metadata.token_endpoint_auth_method === 'none' && change.grants.includes('client_credentials'))
      throw new InvalidClientError('a public client cannot use client_credentials');
    metadata.grant_types = change.grants;
    metadata.response_types = change.grants.includes('authorization_code') ? ['code'] : [];
  }
  if ((metadata.grant_types ?? []).includes('authorization_code') && !(metadata.redirect_uris ?? []).length) {
    throw new InvalidClientError('a client using authorization_code needs at least one --redirect-uri');
  }
  if (change.name !== undefined) {
    if (change.name === '') delete metadata.client_name;
    else metadata.client_name = change.name;
  }
  if (change.scope !== undefined) {
    delete metadata[CLIENT_RESOURCE_SCOPE];
    Object.assign(metadata, scopeMetadata(change.scope));
  }
  if (change.resourceServers !== undefined) {
    delete metadata[CLIENT_RESOURCE_SERVERS];
    if (change.resourceServers.length) metadata[CLIENT_RESOURCE_SERVERS] = change.resourceServers;
  }
  if (change.idTokenAlg !== undefined) Object.assign(metadata, idTokenAlgMetadata(change.idTokenAlg));
  try {
    await provider.Client.validate(metadata);
  } catch (err) {
    const e = err as { error_description?: string; message: string };
    throw new InvalidClientError(e.error_description ?? e.message);
  }
  await adapter.upsert(clientId, metadata as never);
  return true;
}

/**
 * The client's registered metadata; its secret as stored (hashed or sealed, see src/oidc/at-rest.ts). `caches`: the
 * serving process's (the provisioning APIs' bearer check), NO_CACHE for the operator's use cases.
 */
export async function findClient(db: Db, caches: Caches, clientId: string): Promise<ClientMetadata | undefined> {
  return findStoredClient(db, caches, clientId);
}

export async function listClients(db: Db): Promise<ClientMetadata[]> {
  return listStoredClients(db);
}

export async function removeClient(db: Db, clientId: string): Promise<boolean> {
  return deleteStoredClient(db, clientId);
}

// ---- The operator's use cases (admin CLI; a future admin API calls the same functions).

export class NoSuchClientError extends Error {
  constructor(clientId: string) {
    super(`no client ${clientId}`);
  }
}

/** What `client show|list` print: the registered metadata, never a secret (only whether one is set). */
export type ClientDescription = {
  clientId: string;
  name: string | null;
  type: 'public' | 'confidential';
  authMethod: string;
  grants: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  scope: string;
  resourceServers: string[];
  idTokenAlg: string;
};

export function describeClient(metadata: ClientMetadata): ClientDescription {
  const servers = metadata[CLIENT_RESOURCE_SERVERS];
  return {
    clientId: metadata.client_id,
    name: metadata.client_name ?? null,
    type: metadata.token_endpoint_auth_method === 'none' ? 'public' : 'confidential',
    authMethod: metadata.token_endpoint_auth_method ?? 'client_secret_basic',
    grants: [...(metadata.grant_types ?? ['authorization_code'])],
    redirectUris: [...(metadata.redirect_uris ?? [])],
    postLogoutRedirectUris: [...(metadata.post_logout_redirect_uris ?? [])],
    scope: registeredScope(metadata),
    resourceServers: Array.isArray(servers) ? (servers as string[]) : [],
    // OIDC Core §3.1.3.7 / oidc-provider's default when the client registered none.
    idTokenAlg: metadata.id_token_signed_response_alg ?? 'RS256',
  };
}

/** Registers a client; returns its metadata and, when one was generated, the secret (shown to the operator once). */
export async function addClient(
  db: Db,
  provider: Provider,
  keys: AtRestKeys,
  actor: string,
  spec: ClientSpec,
): Promise<{ metadata: ClientMetadata; generatedSecret?: string }> {
  const metadata = clientMetadata(spec);
  await registerClient(db, provider, metadata, keys);
  await recordAudit(db, { actor, action: 'client.add', subject: spec.clientId, result: 'success', details: { grants: metadata.grant_types } });
  return { metadata, ...(metadata.client_secret && !spec.secret ? { generatedSecret: metadata.client_secret } : {}) };
}

export async function changeClient(db: Db, provider: Provider, keys: AtRestKeys, actor: string, clientId: string, change: ClientChange): Promise<void> {
  if (!(await updateClient(db, provider, clientId, change, keys))) throw new NoSuchClientError(clientId);
  await recordAudit(db, { actor, action: 'client.update', subject: clientId, result: 'success', details: { ...change } });
}

export async function showClient(db: Db, clientId: string): Promise<ClientDescription> {
  const metadata = await findClient(db, NO_CACHE, clientId);
  if (!metadata) throw new NoSuchClientError(clientId);
  return describeClient(metadata);
}

export async function listClientDescriptions(db: Db): Promise<ClientDescription[]> {
  return (await listClients(db)).map(describeClient);
}

/**
 * Replaces a confidential client's secret with a new random one and returns it: the only time it is visible, since
 * it is stored hashed (or sealed where oidc-provider needs it as a key, src/oidc/at-rest.ts). The old secret stops
 * working at the client's next request on every instance (the clients cache is dropped on change).
 */
export async function rotateClientSecret(db: Db, keys: AtRestKeys, actor: string, clientId: string): Promise<string> {
  const adapter = new PostgresAdapter(db, 'Client', keys);
  const current = (await adapter.find(clientId)) as ClientMetadata | undefined;
  if (!current) throw new NoSuchClientError(clientId);
  if (current.token_endpoint_auth_method === 'none') throw new InvalidClientError(`client ${clientId} is public: it has no secret`);
  if (
    current.token_endpoint_auth_method === 'private_key_jwt' ||
    current.token_endpoint_auth_method === 'tls_client_auth' ||
    current.token_endpoint_auth_method === 'self_signed_tls_client_auth'
  ) {
    throw new InvalidClientError(`client ${clientId} authenticates with ${current.token_endpoint_auth_method}, not a secret`);
  }
  const secret = crypto.randomBytes(32).toString('base64url');
  await adapter.upsert(clientId, { ...current, client_secret: secret } as never);
  await recordAudit(db, { actor, action: 'client.rotate-secret', subject: clientId, result: 'success' });
  return secret;
}

export async function deleteClient(db: Db, actor: string, clientId: string): Promise<void> {
  if (!(await removeClient(db, clientId))) throw new NoSuchClientError(clientId);
  await recordAudit(db, { actor, action: 'client.remove', subject: clientId, result: 'success' });
}
