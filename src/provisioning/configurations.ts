// The rules of TS 29.549 SS_IdmParameterProvisioning (ss-ipp): VAL services configuration resources owned by the
// VAL server that created them; each write is SLA-checked, per-service locked, all-or-nothing and audited
// (docs/provisioning.md). The mapping tokens read is the union of all configurations and the operator's grants.
import type { Knex } from 'knex';
import { recordAudit } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { forbidden, notFound } from './problem.ts';
import { checkSla, type Caller } from './service.ts';
import { negotiateFeatures, newConfId, type RetrieveQuery, type ValServicesConfigPatch, type ValServicesConfigRequest } from './ss-ipp-schema.ts';
import {
  configurationPairs,
  configurationServices,
  configurationSummaries,
  countConfigurationPairs,
  countServiceTargets,
  deleteConfigurationRow,
  findConfiguration,
  findValServer,
  findValServerByClientId,
  insertConfiguration,
  listConfigurations,
  lockServices,
  replaceConfigurationPairs,
  touchConfiguration,
  type ConfigurationPair,
  type ConfigurationRow,
  type ConfigurationSummary,
  type ValServerRow,
} from './store.ts';

/** TS 29.549 ValTargetUe: a VAL user ID or a VAL UE ID. */
export type ValTargetUe = { valUserId: string } | { valUeId: string };
/** TS 29.549 VALServicesConfig as this server answers it. */
export type ValServicesConfig = { valServerId: string; valSvcConf: { valServiceId: string; idList: ValTargetUe[] }[]; suppFeat: string };

export const SS_IPP_AUDIT_ACTIONS = {
  create: 'provisioning.create_val_service_conf',
  retrieve: 'provisioning.retrieve_val_service_conf',
  update: 'provisioning.update_val_service_conf',
  modify: 'provisioning.modify_val_service_conf',
  delete: 'provisioning.delete_val_service_conf',
} as const;

/** What a write did: the resource, its representation, and the (service, target) pairs it added and removed. */
export type ConfigurationOutcome = { confId: string; config: ValServicesConfig; added: number; removed: number };

type ServiceParams = ValServicesConfigRequest['valSvcConf'];

function toPairs(valSvcConf: ServiceParams): ConfigurationPair[] {
  return valSvcConf.flatMap((p) =>
    p.idList.map((t): ConfigurationPair =>
      t.valUserId !== undefined
        ? { valServiceId: p.valServiceId, kind: 'user', id: t.valUserId }
        : { valServiceId: p.valServiceId, kind: 'ue', id: t.valUeId! },
    ),
  );
}

function toConfig(owner: string, suppFeat: string, valSvcConf: ServiceParams): ValServicesConfig {
  return {
    valServerId: owner,
    valSvcConf: valSvcConf.map((p) => ({
      valServiceId: p.valServiceId,
      idList: p.idList.map((t): ValTargetUe => (t.valUserId !== undefined ? { valUserId: t.valUserId } : { valUeId: t.valUeId! })),
    })),
    suppFeat,
  };
}

function fromPairs(row: ConfigurationRow, pairs: ConfigurationPair[]): ValServicesConfig {
  const byService = new Map<string, ValTargetUe[]>();
  for (const p of pairs) {
    let list = byService.get(p.valServiceId);
    if (!list) byService.set(p.valServiceId, (list = []));
    list.push(p.kind === 'user' ? { valUserId: p.id } : { valUeId: p.id });
  }
  return { valServerId: row.owner, valSvcConf: [...byService].map(([valServiceId, idList]) => ({ valServiceId, idList })), suppFeat: row.supp_feat };
}

/** TS 29.549: valServerId names the VAL server provisioning the configuration, which must be the caller. */
function checkValServerId(caller: Caller, valServerId: string): void {
  if (valServerId !== caller.requesterIdentity) {
    throw forbidden('VAL_SERVER_ID_MISMATCH', `the access token belongs to VAL server ${caller.requesterIdentity}, not ${valServerId}`, {
      invalidParams: [{ param: '/valServerId', reason: 'must be the calling VAL server' }],
    });
  }
}

function noSuchConfiguration(confId: string) {
  // Another VAL server's configuration is answered the same way: its existence is not revealed.
  return notFound(`no VAL services configuration ${confId}`);
}

function quotaExceeded(sla: ValServerRow, valServiceId: string, count: number, param: string) {
  return forbidden(
    'QUOTA_EXCEEDED',
    `VAL service ${valServiceId} would have ${count} VAL users and VAL UEs provisioned by ${sla.requester_identity}; the service agreement allows ${sla.max_users_per_service}`,
    {
      invalidParams: [{ param, reason: `at most ${sla.max_users_per_service} VAL users and VAL UEs per VAL service` }],
    },
  );
}

/** The caller's SLA, read FOR SHARE (an operator's concurrent update waits), checked for the services the write names. */
async function sharedSla(trx: Knex.Transaction, caller: Caller, valSvcConf: ServiceParams, now: Date): Promise<ValServerRow> {
  const services = valSvcConf.map((p, i) => ({ valServiceId: p.valServiceId, where: `/valSvcConf/${i}/valServiceId` }));
  const sla = checkSla(await findValServerByClientId(trx, caller.clientId, 'share'), caller, services, now);
  if (sla.max_users_per_service !== null) {
    const i = valSvcConf.findIndex((p) => p.idList.length > sla.max_users_per_service!);
    if (i >= 0) throw quotaExceeded(sla, valSvcConf[i]!.valServiceId, valSvcConf[i]!.idList.length, `/valSvcConf/${i}/idList`);
  }
  return sla;
}

/**
 * Makes the configuration's pairs exactly the given ones. Lock order, the same for every writer (no deadlock): the
 * SLA row (shared), then configuration rows, then the VAL services' advisory locks (the ones it had and the new
 * ones), in hash order. The quota (per VAL server and service, over all its configurations) must hold afterwards.
 */
async function writePairs(
  trx: Knex.Transaction,
  sla: ValServerRow,
  confId: string,
  valSvcConf: ServiceParams,
  fresh: boolean,
): Promise<{ added: number; removed: number }> {
  const services = valSvcConf.map((p) => p.valServiceId);
  const previous = fresh ? [] : await configurationServices(trx, confId);
  await lockServices(trx, [...new Set([...services, ...previous])]);
  const outcome = await replaceConfigurationPairs(trx, confId, sla.requester_identity, toPairs(valSvcConf), fresh);
  if (sla.max_users_per_service !== null && outcome.added > 0) {
    const counts = await countServiceTargets(trx, services, sla.requester_identity);
    const i = services.findIndex((s) => (counts.get(s) ?? 0) > sla.max_users_per_service!);
    if (i >= 0) throw quotaExceeded(sla, services[i]!, counts.get(services[i]!)!, `/valSvcConf/${i}/idList`);
  }
  return outcome;
}

const auditServices = (valSvcConf: ServiceParams) => valSvcConf.map((p) => ({ valServiceId: p.valServiceId, entries: p.idList.length }));

/** CreateValServiceConf (POST /configurations): a new configuration resource owned by the caller. */
export async function createValServiceConf(db: Db, caller: Caller, body: ValServicesConfigRequest, now: Date): Promise<ConfigurationOutcome> {
  checkValServerId(caller, body.valServerId);
  const suppFeat = negotiateFeatures(body.suppFeat);
  return db.transaction(async (trx) => {
    const sla = await sharedSla(trx, caller, body.valSvcConf, now);
    const confId = newConfId();
    await insertConfiguration(trx, { confId, owner: sla.requester_identity, suppFeat });
    const { added, removed } = await writePairs(trx, sla, confId, body.valSvcConf, true);
    // Same transaction: there is no committed change without its audit event.
    await recordAudit(trx, {
      actor: sla.requester_identity,
      action: SS_IPP_AUDIT_ACTIONS.create,
      subject: confId,
      result: 'success',
      details: { services: auditServices(body.valSvcConf), added },
    });
    return { confId, config: toConfig(sla.requester_identity, suppFeat, body.valSvcConf), added, removed };
  });
}

/** RetrieveValServiceConf (GET /configurations): the caller's configurations, optionally only those in config-ids. */
export async function retrieveValServiceConfs(db: Db, caller: Caller, query: RetrieveQuery): Promise<ValServicesConfig[]> {
  // Only one's own configurations are ever listed: asking for another VAL server's is refused, not answered empty.
  if (query.valServerId !== undefined && query.valServerId !== caller.requesterIdentity) {
    throw forbidden('VAL_SERVER_ID_MISMATCH', `the access token belongs to VAL server ${caller.requesterIdentity}, not ${query.valServerId}`, {
      invalidParams: [{ param: 'val-server-id', reason: 'must be the calling VAL server' }],
    });
  }
  const rows = await listConfigurations(db, caller.requesterIdentity, query.confIds);
  const pairs = await configurationPairs(
    db,
    rows.map((r) => r.conf_id),
  );
  // A configuration emptied by a concurrent compatibility-API write is on its way out: not listed.
  const configs = rows.filter((r) => pairs.has(r.conf_id)).map((r) => fromPairs(r, pairs.get(r.conf_id)!));
  await recordAudit(db, { actor: caller.requesterIdentity, action: SS_IPP_AUDIT_ACTIONS.retrieve, result: 'success', details: { returned: configs.length } });
  return configs;
}

/** RetrieveIndValServicesConf (GET /configurations/{confId}). */
export async function retrieveIndValServicesConf(db: Db, caller: Caller, confId: string): Promise<ValServicesConfig> {
  const row = await findConfiguration(db, confId, caller.requesterIdentity);
  const pairs = row ? (await configurationPairs(db, [confId])).get(confId) : undefined;
  if (!row || !pairs) throw noSuchConfiguration(confId);
  await recordAudit(db, {
    actor: caller.requesterIdentity,
    action: SS_IPP_AUDIT_ACTIONS.retrieve,
    subject: confId,
    result: 'success',
    details: { returned: 1 },
  });
  return fromPairs(row, pairs);
}

/** UpdateIndValServicesConf (PUT): the configuration becomes exactly the given one; other configurations are untouched. */
export async function updateIndValServicesConf(
  db: Db,
  caller: Caller,
  confId: string,
  body: ValServicesConfigRequest,
  now: Date,
): Promise<ConfigurationOutcome> {
  checkValServerId(caller, body.valServerId);
  const suppFeat = negotiateFeatures(body.suppFeat);
  return db.transaction(async (trx) => {
    const sla = await sharedSla(trx, caller, body.valSvcConf, now);
    if (!(await findConfiguration(trx, confId, sla.requester_identity, 'update'))) throw noSuchConfiguration(confId);
    const { added, removed } = await writePairs(trx, sla, confId, body.valSvcConf, false);
    await touchConfiguration(trx, confId, suppFeat);
    await recordAudit(trx, {
      actor: sla.requester_identity,
      action: SS_IPP_AUDIT_ACTIONS.update,
      subject: confId,
      result: 'success',
      details: { services: auditServices(body.valSvcConf), added, removed },
    });
    return { confId, config: toConfig(sla.requester_identity, suppFeat, body.valSvcConf), added, removed };
  });
}

/** ModifyIndValServicesConf (PATCH, RFC 7396): valSvcConf, when present, replaces the configuration's list as a whole. */
export async function modifyIndValServicesConf(
  db: Db,
  caller: Caller,
  confId: string,
  patch: ValServicesConfigPatch,
  now: Date,
): Promise<ConfigurationOutcome> {
  const valSvcConf = patch.valSvcConf;
  // An empty merge patch changes nothing (RFC 7396 §2): answer the resource as it is.
  if (valSvcConf === undefined) return { confId, config: await retrieveIndValServicesConf(db, caller, confId), added: 0, removed: 0 };
  return db.transaction(async (trx) => {
    const sla = await sharedSla(trx, caller, valSvcConf, now);
    const row = await findConfiguration(trx, confId, sla.requester_identity, 'update');
    if (!row) throw noSuchConfiguration(confId);
    const { added, removed } = await writePairs(trx, sla, confId, valSvcConf, false);
    await touchConfiguration(trx, confId);
    await recordAudit(trx, {
      actor: sla.requester_identity,
      action: SS_IPP_AUDIT_ACTIONS.modify,
      subject: confId,
      result: 'success',
      details: { services: auditServices(valSvcConf), added, removed },
    });
    return { confId, config: toConfig(sla.requester_identity, row.supp_feat, valSvcConf), added, removed };
  });
}

/**
 * DeleteIndValServicesConf (DELETE): the configuration and exactly its pairs go. Needs an SLA in force, but not its
 * VAL services: giving up a grant never widens anything.
 */
export async function deleteIndValServicesConf(db: Db, caller: Caller, confId: string, now: Date): Promise<{ removed: number }> {
  return db.transaction(async (trx) => {
    const sla = checkSla(await findValServerByClientId(trx, caller.clientId, 'share'), caller, [], now);
    if (!(await findConfiguration(trx, confId, sla.requester_identity, 'update'))) throw noSuchConfiguration(confId);
    await lockServices(trx, await configurationServices(trx, confId));
    const pairs = await countConfigurationPairs(trx, confId);
    await deleteConfigurationRow(trx, confId, sla.requester_identity);
    await recordAudit(trx, {
      actor: sla.requester_identity,
      action: SS_IPP_AUDIT_ACTIONS.delete,
      subject: confId,
      result: 'success',
      details: { removed: pairs },
    });
    return { removed: pairs };
  });
}

/** A VAL server's configurations with their sizes (the operator's `val-server configurations`); undefined: no such VAL server. */
export async function configurationsOf(db: Db, requesterIdentity: string): Promise<ConfigurationSummary[] | undefined> {
  if (!(await findValServer(db, requesterIdentity))) return undefined;
  return configurationSummaries(db, requesterIdentity);
}
