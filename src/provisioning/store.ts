// Storage of the VAL service ↔ VAL user mapping (val_service_users), VAL UE IDs (val_service_ues, val_user_ues), TS 29.549
// configurations (val_service_configurations) and VAL servers with their SLA (val_servers): the one module with SQL on
// these tables; set-based statements, one per batch, never one per user.
import type { Knex } from 'knex';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';
import { grantLiveSql } from '../oidc/adapter.ts';
import { userStatusSql, type UserStatus } from '../users/store.ts';

/** What token issuance knows of a VAL user, as stored (src/users/eligibility.ts turns it into the answer). */
export type UserStandingRow = {
  /** The local record's status; none for a VAL user without credentials here (a partner domain's user). */
  status: UserStatus | undefined;
  /** The provisioned VAL service IDs, sorted, distinct. */
  services: string[];
  /** Whether the grant asked about still exists (false when none was asked about). */
  grantLive: boolean;
};

// The one services-of-a-user query: the user's own mappings, served by the (val_user_id, val_service_id) index, plus
// the services provisioned to the user's VAL UE IDs (TS 29.549 ValTargetUe.valUeId; val_user_ues binds UEs to users).
// union (distinct): two VAL servers may both have provisioned the user for a shared VAL service.
const SERVICES_OF_USER = `select s.val_service_id from val_service_users s where s.val_user_id = $1
          union select e.val_service_id from val_user_ues b join val_service_ues e on e.val_ue_id = b.val_ue_id where b.val_user_id = $1
          order by 1`;

/**
 * The standing columns (status, services) of the VAL user whose ID the SQL expression `userExpr` gives, for a statement
 * of another store that reads them in the same round trip: the refresh grant's read of its refresh token and grant
 * (src/oidc/adapter.ts, wired by src/oidc/account.ts). standingFromColumns turns them into a UserStandingRow.
 */
export function standingColumnsSql(userExpr: string): string {
  return `${userStatusSql(userExpr)} as standing_status, array(${SERVICES_OF_USER.replaceAll('$1', userExpr)}) as standing_services`;
}

export function standingFromColumns(row: Record<string, unknown>): UserStandingRow {
  return { status: (row.standing_status as UserStatus | null) ?? undefined, services: row.standing_services as string[], grantLive: true };
}

// Status, services and (for introspection and token exchange) the token's grant in one round trip: separate
// statements were a fifth of a refresh grant's time and half of an introspection's. The status and the grant test
// come from the stores of their tables (src/users/store.ts, src/oidc/adapter.ts: its find of a Grant).
const USER_STANDING = `select ${userStatusSql('$1')} as status, array(${SERVICES_OF_USER}) as services, ${grantLiveSql('$2')} as grant_live`;

/**
 * readUserStanding's statement as a part of another statement (a CTE), the user's and the grant's IDs in the
 * parameters `userParam` and `grantParam` (a null grant ID is never live): for a write that must go in the same
 * round trip as the read (src/federation/grant-statements.ts). userStandingFromRow turns its row into a UserStandingRow;
 * eligibilityConditionSql (src/users/eligibility.ts) is a condition on its columns.
 */
export function userStandingSql(userParam: string, grantParam: string): string {
  return `select ${userStatusSql(userParam)} as status, array(${SERVICES_OF_USER.replaceAll('$1', userParam)}) as services, ${grantLiveSql(grantParam)} as grant_live`;
}

export function userStandingFromRow(row: { status: UserStatus | null; services: string[]; grant_live: boolean }): UserStandingRow {
  return { status: row.status ?? undefined, services: row.services, grantLive: row.grant_live };
}

/** Reads a VAL user's standing (and whether `grantId` is live) in one prepared statement; the hot path of every token. */
export async function readUserStanding(db: Db, valUserId: string, grantId?: string): Promise<UserStandingRow> {
  const { rows } = await queryPrepared<{ status: UserStatus | null; services: string[]; grant_live: boolean }>(db, 'user_standing', USER_STANDING, [
    valUserId,
    grantId ?? null,
  ]);
  return { status: rows[0]!.status ?? undefined, services: rows[0]!.services, grantLive: rows[0]!.grant_live };
}

/** The VAL service IDs a VAL user is provisioned for, sorted: the same statement as token issuance runs. */
export async function servicesOfUser(db: Db, valUserId: string): Promise<string[]> {
  return (await readUserStanding(db, valUserId)).services;
}

/** The plan of exactly the statement token issuance runs, for the benchmark (EXPLAIN ANALYZE of the prepared text). */
export async function explainUserStanding(db: Db, valUserId: string): Promise<string> {
  const { rows } = await queryPrepared<{ 'QUERY PLAN': string }>(db, 'explain_user_standing', `explain (analyze, buffers) ${USER_STANDING}`, [valUserId, null]);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

/**
 * The VAL user in `userIdColumn` (of another store's statement) is provisioned for `valServiceId`, directly or through
 * a bound VAL UE ID: a condition with its bindings, so the mapping tables' SQL stays here (the admin's
 * `user list --service`, src/users/store.ts listUsers). Each half is served by its (val_user_id, ...) index.
 */
export function provisionedForService(userIdColumn: string, valServiceId: string): { sql: string; bindings: string[] } {
  return {
    sql: `(exists(select 1 from val_service_users v where v.val_user_id = ${userIdColumn} and v.val_service_id = ?)
      or exists(select 1 from val_user_ues b join val_service_ues e on e.val_ue_id = b.val_ue_id where b.val_user_id = ${userIdColumn} and e.val_service_id = ?))`,
    bindings: [valServiceId, valServiceId],
  };
}

/**
 * Adds users to a service on behalf of one provisioner (its existing entries are kept, in whichever configuration
 * they are); returns how many were new to it. `confId`: the configuration the new entries belong to (the
 * provisioner's compatibility configuration for the seed-named API; none for the operator's grants).
 */
export async function addServiceUsers(
  db: Db,
  valServiceId: string,
  valUserIds: string[],
  provisionedBy: string,
  confId: string | null = null,
): Promise<number> {
  if (valUserIds.length === 0) return 0;
  // Entries of a configuration are written only under lockServices (the seed-named API, ss-ipp), so once the
  // anti-join has seen the committed entries nothing can collide with the insert but a repeat in the list itself:
  // dropped here, which spares PostgreSQL the speculative insertion of ON CONFLICT (a quarter of the statement's
  // time for 100,000 IDs, bench/RESULTS.md). The operator's grants (no configuration) take no lock and keep it.
  const unlocked = confId === null;
  const res = await db.raw(
    `insert into val_service_users (val_service_id, val_user_id, provisioned_by, conf_id)
     select ?, u, ?, ? from unnest(?::text[]) as u
     where not exists (select 1 from val_service_users v where v.val_service_id = ? and v.provisioned_by = ? and v.val_user_id = u)${
       unlocked ? '\n     on conflict do nothing' : ''
     }`,
    [valServiceId, provisionedBy, confId, unlocked ? valUserIds : [...new Set(valUserIds)], valServiceId, provisionedBy],
  );
  return res.rowCount as number;
}

/**
 * Runs a delete on val_service_users that returns (conf_id, val_user_id); answers how many distinct users went, and
 * drops the configurations it emptied, except `keep` (the one the caller is about to write into).
 */
async function deleteEntries(db: Db, sql: string, bindings: readonly Knex.RawBinding[], keep: string | null = null): Promise<number> {
  const { rows } = await db.raw(
    `with gone as (${sql} returning conf_id, val_user_id)
    select count(distinct val_user_id)::int as n, coalesce(array_agg(distinct conf_id) filter (where conf_id is not null), '{}') as confs from gone`,
    bindings,
  );
  await dropEmptyConfigurations(
    db,
    (rows[0].confs as string[]).filter((c) => c !== keep),
  );
  return rows[0].n as number;
}

/**
 * Removes users from a service; returns how many entries went. With a provisioner, only its own entries;
 * without one (the operator's `service revoke`), every provisioner's.
 */
export async function removeServiceUsers(
  db: Db,
  valServiceId: string,
  valUserIds: string[],
  provisionedBy?: string,
  keep: string | null = null,
): Promise<number> {
  if (valUserIds.length === 0) return 0;
  return provisionedBy === undefined
    ? deleteEntries(db, 'delete from val_service_users where val_service_id = ? and val_user_id = any(?::text[])', [valServiceId, valUserIds])
    : deleteEntries(
        db,
        'delete from val_service_users where val_service_id = ? and provisioned_by = ? and val_user_id = any(?::text[])',
        [valServiceId, provisionedBy, valUserIds],
        keep,
      );
}

/**
 * Makes one provisioner's entries for a service exactly the given set (TS 23.434 clause 12.3.4.2 replace
 * semantics): two statements whatever the size, an anti-join delete and an insert of what is missing.
 */
export async function replaceServiceUsers(
  db: Db,
  valServiceId: string,
  provisionedBy: string,
  valUserIds: string[],
  confId: string | null = null,
): Promise<{ added: number; removed: number }> {
  // `<> all(constant array)` is evaluated with a hash table (PostgreSQL 15+) whatever the statistics say; an
  // anti-join against unnest() can be planned as a nested loop (quadratic) right after a bulk insert, before ANALYZE.
  const removed = await deleteEntries(
    db,
    'delete from val_service_users where val_service_id = ? and provisioned_by = ? and val_user_id <> all(?::text[])',
    [valServiceId, provisionedBy, valUserIds],
    confId,
  );
  const added = await addServiceUsers(db, valServiceId, valUserIds, provisionedBy, confId);
  return { added, removed };
}

/** Removes all of one provisioner's VAL user entries for a service (in all its configurations); returns how many users went. */
export async function clearServiceUsers(db: Db, valServiceId: string, provisionedBy: string): Promise<number> {
  return deleteEntries(db, 'delete from val_service_users where val_service_id = ? and provisioned_by = ?', [valServiceId, provisionedBy]);
}

/** How many distinct VAL users and VAL UE IDs one provisioner has for a service, over all its configurations (the SLA quota). */
export async function countServiceUsers(db: Db, valServiceId: string, provisionedBy: string): Promise<number> {
  return (await countServiceTargets(db, [valServiceId], provisionedBy)).get(valServiceId) ?? 0;
}

/** One page of a provisioner's VAL user IDs for a service, in ID order (keyset pagination on the unique key). */
export async function listServiceUsers(db: Db, valServiceId: string, provisionedBy: string, page: { after?: string; limit: number }): Promise<string[]> {
  // distinct: the same user may be in two of the provisioner's configurations.
  const q = db('val_service_users').distinct('val_user_id').where({ val_service_id: valServiceId, provisioned_by: provisionedBy });
  if (page.after !== undefined) q.andWhere('val_user_id', '>', page.after);
  // The cursor comparison and the order use the same (column) collation, so pages neither overlap nor skip.
  return q.orderBy('val_user_id').limit(page.limit).pluck('val_user_id');
}

/**
 * Adds (VAL service, VAL user) pairs on behalf of one provisioner in one statement (`services[i]` with `valUserIds[i]`:
 * the bulk import's mappings); existing entries of that provisioner are kept. Returns how many were new.
 */
export async function addServiceUserPairs(db: Db, services: string[], valUserIds: string[], provisionedBy: string): Promise<number> {
  if (services.length === 0) return 0;
  const res = await db.raw(
    `insert into val_service_users (val_service_id, val_user_id, provisioned_by)
     select s, u, ? from unnest(?::text[], ?::text[]) as t(s, u)
     where not exists (select 1 from val_service_users v where v.val_service_id = t.s and v.provisioned_by = ? and v.val_user_id = t.u)
     on conflict do nothing`,
    [provisionedBy, services, valUserIds, provisionedBy],
  );
  return res.rowCount as number;
}

/** Removes every provisioner's entries of one VAL user (the admin's `user delete`); returns how many entries went. */
export async function removeUserMappings(db: Db, valUserId: string): Promise<number> {
  const { rows } = await db.raw(
    `with gone as (delete from val_service_users where val_user_id = ? returning conf_id)
     select count(*)::int as n, coalesce(array_agg(distinct conf_id) filter (where conf_id is not null), '{}') as confs from gone`,
    [valUserId],
  );
  await dropEmptyConfigurations(db, rows[0].confs as string[]);
  return rows[0].n as number;
}

/** One page of the VAL user IDs provisioned for a service by anyone, in ID order (keyset); no limit: all of them. */
export async function listServiceUserIds(db: Db, valServiceId: string, page: { after?: string; limit?: number } = {}): Promise<string[]> {
  // distinct: a user provisioned by two VAL servers for a shared service has two entries.
  const q = db('val_service_users').distinct('val_user_id').where({ val_service_id: valServiceId });
  if (page.after !== undefined) q.andWhere('val_user_id', '>', page.after);
  q.orderBy('val_user_id');
  if (page.limit !== undefined) q.limit(page.limit);
  return q.pluck('val_user_id');
}

export type ServiceCount = { val_service_id: string; users: number; ues: number };

/** Every VAL service that has a mapping, with its distinct VAL users and VAL UE IDs (all provisioners). */
export async function serviceUserCounts(db: Db): Promise<ServiceCount[]> {
  const { rows } = await db.raw(
    `select val_service_id, sum(users)::int as users, sum(ues)::int as ues from (
       select val_service_id, count(distinct val_user_id) as users, 0 as ues from val_service_users group by val_service_id
       union all
       select val_service_id, 0, count(distinct val_ue_id) from val_service_ues group by val_service_id
     ) c group by val_service_id order by val_service_id`,
  );
  return rows as ServiceCount[];
}

// Advisory lock namespace of provisioning ("SEAL" in ASCII), so its keys never meet another feature's.
const LOCK_NAMESPACE = 0x5345414c;

/**
 * Serialises writers of the same VAL services until the transaction ends. Locks are taken in hash order, so two
 * transactions locking overlapping sets cannot deadlock; a hash collision only serialises two unrelated services.
 */
export async function lockServices(trx: Knex.Transaction, valServiceIds: string[]): Promise<void> {
  await trx.raw(`select pg_advisory_xact_lock(?, h) from (select distinct hashtext(s) as h from unnest(?::text[]) as s order by h) as ordered`, [
    LOCK_NAMESPACE,
    valServiceIds,
  ]);
}

export type ValServerRow = {
  requester_identity: string;
  client_id: string;
  endpoint: string | null;
  allowed_service_ids: string[];
  valid_until: Date | null;
  max_users_per_service: number | null;
  status: 'active' | 'disabled';
  /** TS 33.434 A.2.2.3: its SKM-C may provide key material to the S-KMS (SKeyProv in its access tokens). */
  skey_prov: boolean;
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
  skeyProv?: boolean;
};

export class ValServerExistsError extends Error {}

export async function findValServerByClientId(db: Db, clientId: string, lock?: 'share'): Promise<ValServerRow | undefined> {
  const q = db('val_servers').where({ client_id: clientId }).first();
  // FOR SHARE inside a provisioning transaction: an operator's disable or SLA update waits for it, and vice versa.
  if (lock === 'share') q.forShare();
  return (await q) as ValServerRow | undefined;
}

/** findValServerByClientId for the token and introspection paths, through the process's caches (src/db/change-feed.ts). */
export async function findValServerByClientIdCached(db: Db, caches: Caches, clientId: string): Promise<ValServerRow | undefined> {
  return caches.read('val_servers', clientId, () => findValServerByClientId(db, clientId));
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
      skey_prov: spec.skeyProv ?? false,
    })
    .onConflict()
    .ignore()
    .returning('requester_identity');
  // Serving processes drop their cached rows when they hear the trigger's NOTIFY (migration 202611291020).
  if (rows.length === 0)
    throw new ValServerExistsError(`a VAL server with requester identity ${spec.requesterIdentity} or client ID ${spec.clientId} already exists`);
}

export type ValServerChange = Partial<{
  allowedServiceIds: string[];
  validUntil: Date | null;
  maxUsersPerService: number | null;
  endpoint: string | null;
  status: 'active' | 'disabled';
  skeyProv: boolean;
}>;

/** Applies an operator's change to a VAL server; false when there is no such VAL server. */
export async function updateValServer(db: Db, requesterIdentity: string, change: ValServerChange): Promise<boolean> {
  const row: Record<string, unknown> = { updated_at: db.fn.now() };
  if (change.allowedServiceIds !== undefined) row.allowed_service_ids = change.allowedServiceIds;
  if (change.validUntil !== undefined) row.valid_until = change.validUntil;
  if (change.maxUsersPerService !== undefined) row.max_users_per_service = change.maxUsersPerService;
  if (change.endpoint !== undefined) row.endpoint = change.endpoint;
  if (change.status !== undefined) row.status = change.status;
  if (change.skeyProv !== undefined) row.skey_prov = change.skeyProv;
  return (await db('val_servers').where({ requester_identity: requesterIdentity }).update(row)) > 0;
}

export async function listValServers(db: Db): Promise<ValServerRow[]> {
  return (await db('val_servers').select('*').orderBy('requester_identity')) as ValServerRow[];
}

// ---- TS 29.549 configuration resources (val_service_configurations) and VAL UE IDs (val_service_ues, val_user_ues)

export type ConfigurationRow = {
  conf_id: string;
  owner: string;
  supp_feat: string;
  compatibility: boolean;
  created_at: Date;
  updated_at: Date;
};

/** One (VAL service, target) pair of a configuration: `valUserId` entries live in val_service_users, `valUeId` ones in val_service_ues. */
export type ConfigurationPair = { valServiceId: string; kind: 'user' | 'ue'; id: string };

export async function insertConfiguration(db: Db, row: { confId: string; owner: string; suppFeat: string }): Promise<void> {
  await db('val_service_configurations').insert({ conf_id: row.confId, owner: row.owner, supp_feat: row.suppFeat });
}

/** A configuration of one owner, or undefined (another owner's is not found either); `update` locks its row until the transaction ends. */
export async function findConfiguration(db: Db, confId: string, owner: string, lock?: 'update'): Promise<ConfigurationRow | undefined> {
  const q = db('val_service_configurations').where({ conf_id: confId, owner }).first();
  if (lock === 'update') q.forUpdate();
  return (await q) as ConfigurationRow | undefined;
}

/** An owner's configurations, oldest first; `confIds` narrows them to those. */
export async function listConfigurations(db: Db, owner: string, confIds?: string[]): Promise<ConfigurationRow[]> {
  const q = db('val_service_configurations').where({ owner });
  if (confIds) q.whereIn('conf_id', confIds);
  return (await q.orderBy([{ column: 'created_at' }, { column: 'conf_id' }])) as ConfigurationRow[];
}

export async function touchConfiguration(db: Db, confId: string, suppFeat?: string): Promise<void> {
  await db('val_service_configurations')
    .where({ conf_id: confId })
    .update({ updated_at: db.fn.now(), ...(suppFeat !== undefined ? { supp_feat: suppFeat } : {}) });
}

/** Deletes a configuration with its pairs (no foreign key does it: migration 202611291041). False when it was not there. */
export async function deleteConfigurationRow(db: Db, confId: string, owner: string): Promise<boolean> {
  const gone = (await db('val_service_configurations').where({ conf_id: confId, owner }).delete()) > 0;
  if (gone) {
    await db('val_service_users').where({ conf_id: confId }).delete();
    await db('val_service_ues').where({ conf_id: confId }).delete();
  }
  return gone;
}

/**
 * The owner's compatibility configuration (where the seed-named API's new entries go), created on first use and
 * locked until the transaction ends, so seed-API writers of one VAL server take it before any service lock.
 */
export async function compatibilityConfiguration(db: Db, owner: string, newConfId: string): Promise<string> {
  const { rows } = await db.raw(
    `insert into val_service_configurations (conf_id, owner, compatibility) values (?, ?, true)
     on conflict (owner) where compatibility do update set updated_at = now()
     returning conf_id`,
    [newConfId, owner],
  );
  return rows[0].conf_id as string;
}

/**
 * Drops the given configurations that no longer have any pair (the seed-named API or `service revoke` removed
 * their last entries): a configuration resource always has at least one VAL service (TS 29.549 valSvcConf
 * minItems 1). One held by a concurrent writer is skipped: that writer leaves it non-empty or deletes it.
 */
export async function dropEmptyConfigurations(db: Db, confIds: string[]): Promise<void> {
  if (confIds.length === 0) return;
  await db.raw(
    `delete from val_service_configurations c
     where c.conf_id in (select conf_id from val_service_configurations where conf_id = any(?::text[]) for update skip locked)
       and not exists (select 1 from val_service_users v where v.conf_id = c.conf_id)
       and not exists (select 1 from val_service_ues e where e.conf_id = c.conf_id)`,
    [confIds],
  );
}

/** The VAL services a configuration currently names. */
export async function configurationServices(db: Db, confId: string): Promise<string[]> {
  const { rows } = await db.raw(
    `select val_service_id from val_service_users where conf_id = ? union select val_service_id from val_service_ues where conf_id = ?`,
    [confId, confId],
  );
  return rows.map((r: { val_service_id: string }) => r.val_service_id);
}

export async function countConfigurationPairs(db: Db, confId: string): Promise<number> {
  const { rows } = await db.raw(
    `select (select count(*) from val_service_users where conf_id = ?) + (select count(*) from val_service_ues where conf_id = ?) as n`,
    [confId, confId],
  );
  return Number(rows[0].n);
}

/** The pairs of the given configurations, grouped by configuration; per service, VAL user IDs then VAL UE IDs, each in ID order. */
export async function configurationPairs(db: Db, confIds: string[]): Promise<Map<string, ConfigurationPair[]>> {
  const byConf = new Map<string, ConfigurationPair[]>();
  if (confIds.length === 0) return byConf;
  const { rows } = await db.raw(
    `select conf_id, val_service_id, 'user' as kind, val_user_id as id from val_service_users where conf_id = any(?::text[])
     union all
     select conf_id, val_service_id, 'ue', val_ue_id from val_service_ues where conf_id = any(?::text[])
     order by conf_id, val_service_id, kind desc, id`,
    [confIds, confIds],
  );
  for (const r of rows as { conf_id: string; val_service_id: string; kind: 'user' | 'ue'; id: string }[]) {
    let pairs = byConf.get(r.conf_id);
    if (!pairs) byConf.set(r.conf_id, (pairs = []));
    pairs.push({ valServiceId: r.val_service_id, kind: r.kind, id: r.id });
  }
  return byConf;
}

// Pairs travel as parallel arrays (services[i], ids[i]); a key joins them with a space, which no ID contains (src/users/ids.ts).
const pairKey = (valServiceId: string, id: string) => `${valServiceId} ${id}`;

/** The pairs (services[i], ids[i]) without repeats, in their order. */
function uniquePairs(services: string[], ids: string[]): [string[], string[]] {
  const seen = new Set<string>();
  const out: [string[], string[]] = [[], []];
  services.forEach((service, i) => {
    const key = pairKey(service, ids[i]!);
    if (seen.has(key)) return;
    seen.add(key);
    out[0].push(service);
    out[1].push(ids[i]!);
  });
  return out;
}

/**
 * Makes a configuration's pairs exactly `pairs` (POST, PUT, PATCH): per target kind, one delete of what is no longer
 * listed (`<> all(array)`, hashed) and one insert of what is missing, whatever the size. Returns the pairs added and removed.
 */
export async function replaceConfigurationPairs(
  db: Db,
  confId: string,
  owner: string,
  pairs: ConfigurationPair[],
  fresh: boolean,
): Promise<{ added: number; removed: number }> {
  let added = 0;
  let removed = 0;
  for (const kind of ['user', 'ue'] as const) {
    const mine = pairs.filter((p) => p.kind === kind);
    const services = mine.map((p) => p.valServiceId);
    const ids = mine.map((p) => p.id);
    const [table, column] = kind === 'user' ? ['val_service_users', 'val_user_id'] : ['val_service_ues', 'val_ue_id'];
    if (!fresh) {
      const res = await db.raw(`delete from ${table} where conf_id = ? and (val_service_id || ' ' || ${column}) <> all(?::text[])`, [
        confId,
        mine.map((p) => pairKey(p.valServiceId, p.id)),
      ]);
      removed += res.rowCount as number;
    }
    if (mine.length === 0) continue;
    // A configuration created by this transaction has no pairs yet and no other writer can see it: only a repeat
    // in the request can collide, dropped here instead of by ON CONFLICT (see addServiceUsers).
    const [insertServices, insertIds] = fresh ? uniquePairs(services, ids) : [services, ids];
    const res = await db.raw(
      `insert into ${table} (conf_id, val_service_id, ${column}, provisioned_by)
       select ?, s, i, ? from unnest(?::text[], ?::text[]) as t(s, i)${fresh ? '' : '\n       on conflict do nothing'}`,
      [confId, owner, insertServices, insertIds],
    );
    added += res.rowCount as number;
  }
  return { added, removed };
}

/** Per service: the distinct VAL users plus VAL UE IDs one provisioner has over all its configurations (the SLA quota counts these). */
export async function countServiceTargets(db: Db, valServiceIds: string[], provisionedBy: string): Promise<Map<string, number>> {
  const { rows } = await db.raw(
    `select s as val_service_id,
       (select count(distinct val_user_id) from val_service_users where val_service_id = s and provisioned_by = ?)
       + (select count(distinct val_ue_id) from val_service_ues where val_service_id = s and provisioned_by = ?) as n
     from unnest(?::text[]) as s`,
    [provisionedBy, provisionedBy, valServiceIds],
  );
  return new Map(rows.map((r: { val_service_id: string; n: string | number }) => [r.val_service_id, Number(r.n)]));
}

export type ConfigurationSummary = ConfigurationRow & { services: number; users: number; ues: number };

/** An owner's configurations with their sizes (the CLI's `val-server configurations`). */
export async function configurationSummaries(db: Db, owner: string): Promise<ConfigurationSummary[]> {
  const { rows } = await db.raw(
    `select c.*,
       (select count(*) from (select val_service_id from val_service_users where conf_id = c.conf_id
                              union select val_service_id from val_service_ues where conf_id = c.conf_id) s)::int as services,
       (select count(*) from val_service_users where conf_id = c.conf_id)::int as users,
       (select count(*) from val_service_ues where conf_id = c.conf_id)::int as ues
     from val_service_configurations c where c.owner = ? order by c.created_at, c.conf_id`,
    [owner],
  );
  return rows as ConfigurationSummary[];
}

export class UeIdBoundError extends Error {}

/**
 * Binds VAL UE IDs to a VAL user (a UE ID belongs to at most one user); binding one already bound to this user is a
 * no-op. Throws UeIdBoundError, binding nothing, when one is bound to another user. Returns how many were new.
 */
export async function bindUeIds(db: Db, valUserId: string, valUeIds: string[]): Promise<number> {
  if (valUeIds.length === 0) return 0;
  return db.transaction(async (trx) => {
    const res = await trx.raw(`insert into val_user_ues (val_ue_id, val_user_id) select e, ? from unnest(?::text[]) as e on conflict do nothing`, [
      valUserId,
      valUeIds,
    ]);
    const taken = await trx('val_user_ues').whereIn('val_ue_id', valUeIds).whereNot({ val_user_id: valUserId }).pluck('val_ue_id');
    if (taken.length) throw new UeIdBoundError(`VAL UE ID ${taken.slice(0, 5).join(', ')} is already bound to another VAL user`);
    return res.rowCount as number;
  });
}

/** Unbinds VAL UE IDs from a VAL user; returns how many were bound to them. */
export async function unbindUeIds(db: Db, valUserId: string, valUeIds: string[]): Promise<number> {
  return db('val_user_ues').where({ val_user_id: valUserId }).whereIn('val_ue_id', valUeIds).delete();
}

/** Unbinds every VAL UE ID of a VAL user; returns how many there were. */
export async function unbindAllUeIds(db: Db, valUserId: string): Promise<number> {
  return db('val_user_ues').where({ val_user_id: valUserId }).delete();
}

export async function ueIdsOfUser(db: Db, valUserId: string): Promise<string[]> {
  return db('val_user_ues').where({ val_user_id: valUserId }).orderBy('val_ue_id').pluck('val_ue_id');
}
