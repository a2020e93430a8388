// The provisioning rules (TS 23.434 clause 12.3.4.2 Provide_Configuration, DESIGN "Provisioning API"): SLA checks,
// per-VAL-server replace-set semantics, quotas, all-or-nothing transactions, audit of every change.
import type { Knex } from 'knex';
import { recordAudit } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { forbidden } from './problem.ts';
import { encodeCursor, type ChangeConfigurationRequest, type Page, type ProvideConfigurationRequest } from './schema.ts';
import { newConfId } from './ss-ipp-schema.ts';
import {
  addServiceUsers,
  clearServiceUsers,
  compatibilityConfiguration,
  dropEmptyConfigurations,
  countServiceUsers,
  findValServerByClientId,
  listServiceUsers,
  lockServices,
  removeServiceUsers,
  replaceServiceUsers,
  type ValServerRow,
} from './store.ts';

/** The VAL server behind a provisioning call, as resolved from its access token. */
export type Caller = { clientId: string; requesterIdentity: string };

export const AUDIT_ACTIONS = {
  provide: 'provisioning.provide_configuration',
  list: 'provisioning.list',
  change: 'provisioning.change',
  delete: 'provisioning.delete',
} as const;

export type ServiceOutcome = { valServiceId: string; users: number; added: number; removed: number };

/**
 * Checks the caller's SLA for the given VAL services (TS 23.434 clause 12.3.4.2: the S-IdMS authorizes the VAL
 * server; DESIGN: registered, active, valid, every service in it). `where` names each service's place in the request.
 */
export function checkSla(row: ValServerRow | undefined, caller: Caller, services: { valServiceId: string; where: string }[], now: Date): ValServerRow {
  if (!row) throw forbidden('NOT_A_VAL_SERVER', `client ${caller.clientId} is not a registered VAL server`);
  if (row.status !== 'active') throw forbidden('VAL_SERVER_DISABLED', `the service agreement of VAL server ${row.requester_identity} is disabled`);
  if (row.valid_until && row.valid_until.getTime() <= now.getTime()) {
    throw forbidden('SLA_EXPIRED', `the service agreement of VAL server ${row.requester_identity} expired at ${row.valid_until.toISOString()}`);
  }
  const allowed = new Set(row.allowed_service_ids);
  const outside = services.filter((s) => !allowed.has(s.valServiceId));
  if (outside.length) {
    throw forbidden(
      'VAL_SERVICE_NOT_IN_SLA',
      `VAL service ${outside
        .map((s) => s.valServiceId)
        .slice(0, 5)
        .join(', ')} is not in the service agreement of ${row.requester_identity}`,
      {
        invalidParams: outside.map((s) => ({ param: s.where, reason: 'not in the service agreement' })),
      },
    );
  }
  return row;
}

function quotaExceeded(row: ValServerRow, valServiceId: string, count: number, param: string) {
  return forbidden(
    'QUOTA_EXCEEDED',
    `VAL service ${valServiceId} would have ${count} VAL users provisioned by ${row.requester_identity}; the service agreement allows ${row.max_users_per_service}`,
    {
      invalidParams: [{ param, reason: `at most ${row.max_users_per_service} VAL users per VAL service` }],
    },
  );
}

/**
 * The checked SLA, then (when the call adds entries) the caller's compatibility configuration, where this API's new
 * entries go so that ss-ipp reads them too, then the services' locks: the lock order of every provisioning writer
 * (src/provisioning/configurations.ts).
 */
async function lockedSla(
  trx: Knex.Transaction,
  caller: Caller,
  services: { valServiceId: string; where: string }[],
  now: Date,
  adds = false,
): Promise<{ sla: ValServerRow; confId: string | null }> {
  const row = checkSla(await findValServerByClientId(trx, caller.clientId, 'share'), caller, services, now);
  const confId = adds ? await compatibilityConfiguration(trx, row.requester_identity, newConfId()) : null;
  // Concurrent writers of one service queue here, so each replace sees the committed result of the previous one.
  await lockServices(
    trx,
    services.map((s) => s.valServiceId),
  );
  return { sla: row, confId };
}

/**
 * Provide_Configuration: for each listed VAL service, the caller's entries become exactly the given VAL user IDs.
 * Entries other VAL servers provisioned for a shared service are untouched (docs/provisioning.md). All or nothing.
 */
export async function provideConfiguration(db: Db, caller: Caller, request: ProvideConfigurationRequest, now: Date): Promise<ServiceOutcome[]> {
  // TS 23.434 clause 12.3.2.1: the requester identity is the VAL server's, and it must be the one calling.
  if (request.requesterIdentity !== caller.requesterIdentity) {
    throw forbidden('REQUESTER_IDENTITY_MISMATCH', `the access token belongs to VAL server ${caller.requesterIdentity}, not ${request.requesterIdentity}`, {
      invalidParams: [{ param: '/requesterIdentity', reason: 'must be the calling VAL server' }],
    });
  }
  const services = request.valServiceInfos.map((s, i) => ({ valServiceId: s.valServiceId, where: `/valServiceInfos/${i}/valServiceId` }));
  return db.transaction(async (trx) => {
    const { sla, confId } = await lockedSla(
      trx,
      caller,
      services,
      now,
      request.valServiceInfos.some((s) => s.valUserIds.length > 0),
    );
    if (sla.max_users_per_service !== null) {
      const i = request.valServiceInfos.findIndex((s) => s.valUserIds.length > sla.max_users_per_service!);
      if (i >= 0)
        throw quotaExceeded(sla, request.valServiceInfos[i]!.valServiceId, request.valServiceInfos[i]!.valUserIds.length, `/valServiceInfos/${i}/valUserIds`);
    }
    const outcomes: ServiceOutcome[] = [];
    for (const { valServiceId, valUserIds } of request.valServiceInfos) {
      const { added, removed } = await replaceServiceUsers(trx, valServiceId, sla.requester_identity, valUserIds, confId);
      outcomes.push({ valServiceId, users: valUserIds.length, added, removed });
    }
    // A compatibility configuration that got nothing new and lost its last entries goes (TS 29.549 valSvcConf minItems 1).
    if (confId) await dropEmptyConfigurations(trx, [confId]);
    // Written in the same transaction: there is no committed change without its audit event.
    await recordAudit(trx, {
      actor: sla.requester_identity,
      action: AUDIT_ACTIONS.provide,
      subject: services.map((s) => s.valServiceId).join(','),
      result: 'success',
      details: { services: outcomes },
    });
    return outcomes;
  });
}

/** PATCH: adds and removes VAL user IDs in the caller's entries of one VAL service; the quota holds afterwards. */
export async function changeConfiguration(
  db: Db,
  caller: Caller,
  valServiceId: string,
  change: ChangeConfigurationRequest,
  now: Date,
): Promise<{ added: number; removed: number }> {
  return db.transaction(async (trx) => {
    const { sla, confId } = await lockedSla(trx, caller, [{ valServiceId, where: 'valServiceId' }], now, change.add.length > 0);
    const removed = await removeServiceUsers(trx, valServiceId, change.remove, sla.requester_identity, confId);
    const added = await addServiceUsers(trx, valServiceId, change.add, sla.requester_identity, confId);
    // A compatibility configuration that got nothing new and lost its last entries goes (TS 29.549 valSvcConf minItems 1).
    if (confId) await dropEmptyConfigurations(trx, [confId]);
    if (sla.max_users_per_service !== null && added > 0) {
      const count = await countServiceUsers(trx, valServiceId, sla.requester_identity);
      if (count > sla.max_users_per_service) throw quotaExceeded(sla, valServiceId, count, '/add');
    }
    await recordAudit(trx, {
      actor: sla.requester_identity,
      action: AUDIT_ACTIONS.change,
      subject: valServiceId,
      result: 'success',
      details: { add: change.add.length, remove: change.remove.length, added, removed },
    });
    return { added, removed };
  });
}

/** DELETE: removes every entry the caller provisioned for one VAL service. */
export async function deleteConfiguration(db: Db, caller: Caller, valServiceId: string, now: Date): Promise<{ removed: number }> {
  return db.transaction(async (trx) => {
    const { sla } = await lockedSla(trx, caller, [{ valServiceId, where: 'valServiceId' }], now);
    const removed = await clearServiceUsers(trx, valServiceId, sla.requester_identity);
    await recordAudit(trx, { actor: sla.requester_identity, action: AUDIT_ACTIONS.delete, subject: valServiceId, result: 'success', details: { removed } });
    return { removed };
  });
}

export type ConfigurationPage = { valServiceId: string; valUserIds: string[]; nextCursor?: string };

/** GET: one page of the VAL user IDs the caller provisioned for one VAL service (not other VAL servers' entries). */
export async function listConfiguration(db: Db, caller: Caller, valServiceId: string, page: Page, now: Date): Promise<ConfigurationPage> {
  const sla = checkSla(await findValServerByClientId(db, caller.clientId), caller, [{ valServiceId, where: 'valServiceId' }], now);
  // One row more than asked tells whether another page exists without a count over the whole service.
  const rows = await listServiceUsers(db, valServiceId, sla.requester_identity, { after: page.after, limit: page.limit + 1 });
  const valUserIds = rows.slice(0, page.limit);
  const result: ConfigurationPage = { valServiceId, valUserIds };
  if (rows.length > page.limit) result.nextCursor = encodeCursor(valUserIds[valUserIds.length - 1]!);
  await recordAudit(db, {
    actor: sla.requester_identity,
    action: AUDIT_ACTIONS.list,
    subject: valServiceId,
    result: 'success',
    details: { returned: valUserIds.length, more: result.nextCursor !== undefined },
  });
  return result;
}
