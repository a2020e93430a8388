// The operator's direct access to the VAL service ↔ VAL user mapping (`service grant|revoke|list|list-all`): admin
// grants are provisioned by OPERATOR, beside what VAL servers provision through the APIs; every write is audited.
import { recordAudit } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { decodeCursor, MAX_PAGE, readPage, type Page } from '../users/cursor.ts';
import { existingUserIds } from '../users/store.ts';
import { addServiceUsers, listServiceUserIds, removeServiceUsers, serviceUserCounts } from './store.ts';

/** provisioned_by of operator grants (and of `user import` mappings); no VAL server may take this identity. */
export const OPERATOR = 'admin';

export class UnknownUsersError extends Error {
  readonly valUserIds: string[];
  constructor(valUserIds: string[]) {
    super(
      `no VAL user ${valUserIds.slice(0, 5).join(', ')}${valUserIds.length > 5 ? ` and ${valUserIds.length - 5} more` : ''}` +
        ' (a mapping for a user without credentials yet is possible: ask for it with --allow-unknown)',
    );
    this.valUserIds = valUserIds;
  }
}

export class InvalidPageError extends Error {}

/**
 * Adds users to a VAL service as the operator. A user with no credentials here is refused unless `allowUnknown`:
 * such a mapping is legitimate (credentials may come later, or from a partner domain) but is usually a typo.
 */
export async function grantService(
  db: Db,
  actor: string,
  valServiceId: string,
  valUserIds: string[],
  options: { allowUnknown?: boolean } = {},
): Promise<number> {
  if (!options.allowUnknown) {
    const known = await existingUserIds(db, valUserIds);
    const unknown = valUserIds.filter((u) => !known.has(u));
    if (unknown.length) throw new UnknownUsersError(unknown);
  }
  const changed = await addServiceUsers(db, valServiceId, valUserIds, OPERATOR);
  await recordAudit(db, {
    actor,
    action: 'service.grant',
    subject: valServiceId,
    result: 'success',
    details: { users: valUserIds.length, changed, ...(options.allowUnknown ? { allowUnknown: true } : {}) },
  });
  return changed;
}

/** Removes users from a VAL service, whoever provisioned them (the operator overrules VAL servers here). */
export async function revokeService(db: Db, actor: string, valServiceId: string, valUserIds: string[]): Promise<number> {
  const changed = await removeServiceUsers(db, valServiceId, valUserIds);
  await recordAudit(db, { actor, action: 'service.revoke', subject: valServiceId, result: 'success', details: { users: valUserIds.length, changed } });
  return changed;
}

/** The VAL users provisioned for a service by anyone, in ID order: all of them, or one page with `limit`. */
export async function serviceUsers(db: Db, valServiceId: string, page: { limit?: number; cursor?: string } = {}): Promise<Page<string>> {
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  if (page.limit === undefined) return { items: await listServiceUserIds(db, valServiceId, { after }) };
  if (!Number.isInteger(page.limit) || page.limit < 1 || page.limit > MAX_PAGE)
    throw new InvalidPageError(`limit must be a whole number from 1 to ${MAX_PAGE}`);
  return readPage(
    page.limit,
    (n) => listServiceUserIds(db, valServiceId, { after, limit: n }),
    (id) => id,
  );
}

export type ServiceUsage = { valServiceId: string; valUsers: number; valUeIds: number };

/** Every VAL service with a mapping, with how many distinct VAL users and VAL UE IDs it has. */
export async function listServices(db: Db): Promise<ServiceUsage[]> {
  return (await serviceUserCounts(db)).map((r) => ({ valServiceId: r.val_service_id, valUsers: r.users, valUeIds: r.ues }));
}
