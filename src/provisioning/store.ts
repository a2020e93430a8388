// Storage of the VAL service ↔ VAL user mapping (val_service_users) and of VAL servers with their SLA
// (val_servers): set-based statements, one per batch, never one per user.
import type { Knex } from 'knex';
import { cached, tableChanged } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';

/** The query behind servicesOfUser, exposed so the benchmark can EXPLAIN exactly what token issuance runs. */
export function servicesOfUserQuery(db: Db, valUserId: string): Knex.QueryBuilder {
  // distinct: two VAL servers may both have provisioned the user for a shared VAL service.
  return db('val_service_users').distinct('val_service_id').where({ val_user_id: valUserId }).orderBy('val_service_id');
}

/** The VAL service IDs a VAL user is provisioned for, sorted; served by the (val_user_id, val_service_id) index. */
export async function servicesOfUser(db: Db, valUserId: string): Promise<string[]> {
  return servicesOfUserQuery(db, valUserId).pluck('val_service_id');
}

/** Adds users to a service on behalf of one provisioner (its existing entries are kept); returns how many were new. */
export async function addServiceUsers(db: Db, valServiceId: string, valUserIds: string[], provisionedBy: string): Promise<number> {
  if (valUserIds.length === 0) return 0;
  const res = await db.raw(
    `insert into val_service_users (val_service_id, val_user_id, provisioned_by)
     select ?, u, ? from unnest(?::text[]) as u
     on conflict do nothing`,
    [valServiceId, provisionedBy, valUserIds],
  );
  return res.rowCount as number;
}

/**
 * Removes users from a service; returns how many entries went. With a provisioner, only its own entries;
 * without one (the operator's `service revoke`), every provisioner's.
 */
export async function removeServiceUsers(db: Db, valServiceId: string, valUserIds: string[], provisionedBy?: string): Promise<number> {
  if (valUserIds.length === 0) return 0;
  const res = provisionedBy === undefined
    ? await db.raw('delete from val_service_users where val_service_id = ? and val_user_id = any(?::text[])', [valServiceId, valUserIds])
    : await db.raw('delete from val_service_users where val_service_id = ? and provisioned_by = ? and val_user_id = any(?::text[])', [valServiceId, provisionedBy, valUserIds]);
  return res.rowCount as number;
}

/**
 * Makes one provisioner's entries for a service exactly the given set (TS 23.434 clause 12.3.4.2 replace
 * semantics): two statements whatever the size, an anti-join delete and an insert of what is missing.
 */
export async function replaceServiceUsers(db: Db, valServiceId: string, provisionedBy: string, valUserIds: string[]): Promise<{ added: number; removed: number }> {
  // `<> all(constant array)` is evaluated with a hash table (PostgreSQL 15+) whatever the statistics say; an
  // anti-join against unnest() can be planned as a nested loop (quadratic) right after a bulk insert, before ANALYZE.
  const removed = await db.raw('delete from val_service_users where val_service_id = ? and provisioned_by = ? and val_user_id <> all(?::text[])', [
    valServiceId,
    provisionedBy,
    valUserIds,
  ]);
  const added = await addServiceUsers(db, valServiceId, valUserIds, provisionedBy);
  return { added, removed: removed.rowCount as number };
}

/** Removes all of one provisioner's entries for a service; returns how many went. */
export async function clearServiceUsers(db: Db, valServiceId: string, provisionedBy: string): Promise<number> {
  return db('val_service_users').where({ val_service_id: valServiceId, provisioned_by: provisionedBy }).delete();
}

export async function countServiceUsers(db: Db, valServiceId: string, provisionedBy: string): Promise<number> {
  const row = (await db('val_service_users').where({ val_service_id: valServiceId, provisioned_by: provisionedBy }).count({ n: '*' }).first()) as { n: number };
  return row.n;
}

/** One page of a provisioner's VAL user IDs for a service, in ID order (keyset pagination on the primary key). */
export async function listServiceUsers(db: Db, valServiceId: string, provisionedBy: string, page: { after?: string; limit: number }): Promise<string[]> {
  const q = db('val_service_users').where({ val_service_id: valServiceId, provisioned_by: provisionedBy });
  if (page.after !== undefined) q.andWhere('val_user_id', '>', page.after);
  // The cursor comparison and the order use the same (column) collation, so pages neither overlap nor skip.
  return q.orderBy('val_user_id').limit(page.limit).pluck('val_user_id');
}

// Advisory lock namespace of provisioning ("SEAL" in ASCII), so its keys never meet another feature's.
const LOCK_NAMESPACE = 0x5345414c;

/**
 * Serialises writers of the same VAL services until the transaction ends. Locks are taken in hash order, so two
 * transactions locking overlapping sets cannot deadlock; a hash collision only serialises two unrelated services.
 */
export async function lockServices(trx: Knex.Transaction, valServiceIds: string[]): Promise<void> {
  await trx.raw(
    `select pg_advisory_xact_lock(?, h) from (select distinct hashtext(s) as h from unnest(?::text[]) as s order by h) as ordered`,
    [LOCK_NAMESPACE, valServiceIds],
  );
}

export type ValServerRow = {
  requester_identity: string;
  client_id: string;
  endpoint: string | null;
  allowed_service_ids: string[];
  valid_until: Date | null;
  max_users_per_service: number | null;
  status: 'active' | 'disabled';
  created_at: Date;
  updated_at: Date;
};

export type ValServerSpec = {
  requesterIdentity: string;
  clientId: string;
  endpoint?: string | null;
  allowedServiceIds: string[];
  validUntil?: Date | null;
  maxUsersPerService?: number | null;
};

export class ValServerExistsError extends Error {}

export async function findValServerByClientId(db: Db, clientId: string, lock?: 'share'): Promise<ValServerRow | undefined> {
  const q = db('val_servers').where({ client_id: clientId }).first();
  // FOR SHARE inside a provisioning transaction: an operator's disable or SLA update waits for it, and vice versa.
  if (lock === 'share') q.forShare();
  return (await q) as ValServerRow | undefined;
}

/** findValServerByClientId for the token and introspection paths: cached per process, dropped on any change (src/db/change-feed.ts). */
export async function findValServerByClientIdCached(db: Db, clientId: string): Promise<ValServerRow | undefined> {
  return cached(db, 'val_servers', clientId, () => findValServerByClientId(db, clientId));
}

export async function findValServer(db: Db, requesterIdentity: string): Promise<ValServerRow | undefined> {
  return (await db('val_servers').where({ requester_identity: requesterIdentity }).first()) as ValServerRow | undefined;
}

export async function insertValServer(db: Db, spec: ValServerSpec): Promise<void> {
  const rows = await db('val_servers')
    .insert({
      requester_identity: spec.requesterIdentity,
      client_id: spec.clientId,
      endpoint: spec.endpoint ?? null,
      allowed_service_ids: spec.allowedServiceIds,
      valid_until: spec.validUntil ?? null,
      max_users_per_service: spec.maxUsersPerService ?? null,
    })
    .onConflict()
    .ignore()
    .returning('requester_identity');
  tableChanged('val_servers');
  if (rows.length === 0) throw new ValServerExistsError(`a VAL server with requester identity ${spec.requesterIdentity} or client ID ${spec.clientId} already exists`);
}

export type ValServerChange = Partial<{
  allowedServiceIds: string[];
  validUntil: Date | null;
  maxUsersPerService: number | null;
  endpoint: string | null;
  status: 'active' | 'disabled';
}>;

/** Applies an operator's change to a VAL server; false when there is no such VAL server. */
export async function updateValServer(db: Db, requesterIdentity: string, change: ValServerChange): Promise<boolean> {
  const row: Record<string, unknown> = { updated_at: db.fn.now() };
  if (change.allowedServiceIds !== undefined) row.allowed_service_ids = change.allowedServiceIds;
  if (change.validUntil !== undefined) row.valid_until = change.validUntil;
  if (change.maxUsersPerService !== undefined) row.max_users_per_service = change.maxUsersPerService;
  if (change.endpoint !== undefined) row.endpoint = change.endpoint;
  if (change.status !== undefined) row.status = change.status;
  const updated = (await db('val_servers').where({ requester_identity: requesterIdentity }).update(row)) > 0;
  tableChanged('val_servers');
  return updated;
}

export async function listValServers(db: Db): Promise<ValServerRow[]> {
  return (await db('val_servers').select('*').orderBy('requester_identity')) as ValServerRow[];
}
