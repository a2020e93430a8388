// Operator use cases of the OIDC side other than clients (src/oidc/clients.ts): signing key rotation, resource servers
// and VAL service scopes. Each records its audit event, so every admin adapter (CLI, a future admin API) gets it.
import { recordAudit } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { rotateSigningKeys } from './keys.ts';
import { STATIC_SCOPES } from './provider.ts';
import { addResourceServer, removeResourceServer, type ResourceServerRow } from './resources.ts';
import { addServiceScope, removeServiceScope, validateServiceScope } from './service-scopes.ts';

export class InvalidScopeError extends Error {}
export class NoSuchScopeError extends Error {}
export class NoSuchResourceServerError extends Error {}

/** New active signing keys; running servers switch within seconds. Returns the new key IDs. */
export async function rotateKeys(db: Db, kek: Buffer, actor: string): Promise<string[]> {
  const kids = await rotateSigningKeys(db, kek);
  await recordAudit(db, { actor, action: 'keys.rotate', result: 'success', details: { kids } });
  return kids;
}

export async function registerResourceServer(db: Db, actor: string, row: Omit<ResourceServerRow, 'description'> & { description?: string }): Promise<void> {
  await addResourceServer(db, row);
  await recordAudit(db, { actor, action: 'resource.add', subject: row.identifier, result: 'success' });
}

export async function deregisterResourceServer(db: Db, actor: string, identifier: string): Promise<void> {
  if (!(await removeResourceServer(db, identifier))) throw new NoSuchResourceServerError(`no resource server ${identifier}`);
  await recordAudit(db, { actor, action: 'resource.remove', subject: identifier, result: 'success' });
}

/**
 * Registers a scope a VAL service's specification defines (TS 33.434 annex A, e.g. 3gpp:mc:ptt_service): a VAL user
 * provisioned for the service who asks for it gets it in the access token's scope.
 */
export async function registerServiceScope(db: Db, actor: string, valServiceId: string, scope: string): Promise<void> {
  const invalid = validateServiceScope(scope, STATIC_SCOPES);
  if (invalid) throw new InvalidScopeError(`invalid scope: ${invalid}`);
  await addServiceScope(db, valServiceId, scope);
  await recordAudit(db, { actor, action: 'service.scope', subject: valServiceId, result: 'success', details: { scope } });
}

export async function deregisterServiceScope(db: Db, actor: string, valServiceId: string, scope: string): Promise<void> {
  const invalid = validateServiceScope(scope, STATIC_SCOPES);
  if (invalid) throw new InvalidScopeError(`invalid scope: ${invalid}`);
  if (!(await removeServiceScope(db, valServiceId, scope))) throw new NoSuchScopeError(`VAL service ${valServiceId} has no scope ${scope}`);
  await recordAudit(db, { actor, action: 'service.scope.remove', subject: valServiceId, result: 'success', details: { scope } });
}
