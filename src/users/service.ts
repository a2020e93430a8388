// VAL user use cases (the admin CLI today; an admin API or SCIM adapter tomorrow): each one applies the rules
// (ID canonical form, password policy), writes through the stores, and records its own audit event.
import { recordAudit } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { revokeAccountRecords } from '../oidc/adapter.ts';
import { provisionedForService, removeUserMappings, servicesOfUser, unbindAllUeIds } from '../provisioning/store.ts';
import { addUserWithUeIds, bindUserUeIds, unbindUserUeIds, userUeIds } from '../provisioning/ue-bindings.ts';
import { decodeCursor, MAX_PAGE, readPage, type Page } from './cursor.ts';
import { hashPassword, passwordPolicyProblem } from './passwords.ts';
import { deleteUserRow, findUserDetail, listUsers as listUserRows, setPassword, setStatus, UserNotFoundError, type UserStatus } from './store.ts';

/** Who performs a use case, as the audit trail names it (`cli` for the admin CLI). */
export type Actor = string;

/** Input the caller must fix (a weak password, an out-of-range limit): a one-line reason, never the secret itself. */
export class InvalidUserInputError extends Error {}

function checkPassword(password: string): void {
  const problem = passwordPolicyProblem(password);
  if (problem) throw new InvalidUserInputError(problem);
}

/** Creates a VAL user with a password and, optionally, bound VAL UE IDs (all or nothing). */
export async function addUser(db: Db, actor: Actor, input: { valUserId: string; password: string; ueIds?: string[] }): Promise<void> {
  checkPassword(input.password);
  const hash = await hashPassword(input.password);
  const ueIds = [...new Set(input.ueIds ?? [])];
  await addUserWithUeIds(db, input.valUserId, hash, ueIds);
  await recordAudit(db, {
    actor,
    action: 'user.add',
    subject: input.valUserId,
    result: 'success',
    ...(ueIds.length ? { details: { ueIds: ueIds.length } } : {}),
  });
}

export async function changePassword(db: Db, actor: Actor, valUserId: string, password: string): Promise<void> {
  checkPassword(password);
  await setPassword(db, valUserId, await hashPassword(password));
  await recordAudit(db, { actor, action: 'user.passwd', subject: valUserId, result: 'success' });
}

/** A disabled user cannot log in, refresh or be introspected as active (src/oidc/account.ts). */
export async function setUserStatus(db: Db, actor: Actor, valUserId: string, status: UserStatus): Promise<void> {
  await setStatus(db, valUserId, status);
  await recordAudit(db, { actor, action: status === 'disabled' ? 'user.disable' : 'user.enable', subject: valUserId, result: 'success' });
}

export type UserSummary = { valUserId: string; status: UserStatus; hasPassword: boolean; createdAt: string; updatedAt: string };
export type UserDetails = UserSummary & { valServiceIds: string[]; valUeIds: string[] };

export async function showUser(db: Db, valUserId: string): Promise<UserDetails> {
  const row = await findUserDetail(db, valUserId);
  if (!row) throw new UserNotFoundError(valUserId);
  const [valServiceIds, valUeIds] = await Promise.all([servicesOfUser(db, valUserId), userUeIds(db, valUserId)]);
  return { ...summary(row), valServiceIds, valUeIds };
}

export type UserQuery = { search?: string; valServiceId?: string; disabled?: boolean; limit?: number; cursor?: string };

/** One page of users in VAL user ID order (keyset pagination: stable under concurrent inserts, no OFFSET scans). */
export async function listUsers(db: Db, query: UserQuery): Promise<Page<UserSummary>> {
  const limit = query.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new InvalidUserInputError(`limit must be a whole number from 1 to ${MAX_PAGE}`);
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const service = query.valServiceId;
  const page = await readPage(
    limit,
    (n) =>
      listUserRows(db, {
        search: query.search,
        where: service === undefined ? undefined : (column) => provisionedForService(column, service),
        disabled: query.disabled,
        after,
        limit: n,
      }),
    (r) => r.val_user_id,
  );
  return { items: page.items.map(summary), nextCursor: page.nextCursor };
}

export type UserDeletion = { mappings: number; ueIds: number; sessions: number; grants: number; tokens: number };

/**
 * Deletes a VAL user: credentials, every provisioner's VAL service mappings, VAL UE ID bindings, and their sessions,
 * grants and tokens — all in one transaction with its audit event. A mapping for the ID may be provisioned again later
 * (a mapping may name a user who has no credentials, DESIGN "Data"); deletion is for the user as they are now.
 */
export async function deleteUser(db: Db, actor: Actor, valUserId: string): Promise<UserDeletion> {
  return db.transaction(async (trx) => {
    const existed = await deleteUserRow(trx, valUserId);
    const mappings = await removeUserMappings(trx, valUserId);
    const ueIds = await unbindAllUeIds(trx, valUserId);
    const records = await revokeAccountRecords(trx, valUserId);
    // Nothing at all under this ID: a typo, not a deletion (and nothing to audit).
    if (!existed && mappings === 0 && ueIds === 0 && Object.keys(records).length === 0) throw new UserNotFoundError(valUserId);
    const outcome = { mappings, ueIds, ...countRecords(records) };
    await recordAudit(trx, { actor, action: 'user.delete', subject: valUserId, result: 'success', details: { ...outcome, credentials: existed } });
    return outcome;
  });
}

export type SessionRevocation = { sessions: number; grants: number; tokens: number };

/**
 * Ends a VAL user's sessions, grants and refresh tokens (their next refresh is invalid_grant; their access tokens are
 * inactive at introspection); the user keeps their credentials and may log in again.
 */
export async function revokeUserSessions(db: Db, actor: Actor, valUserId: string): Promise<SessionRevocation> {
  return db.transaction(async (trx) => {
    if (!(await findUserDetail(trx, valUserId))) throw new UserNotFoundError(valUserId);
    const outcome = countRecords(await revokeAccountRecords(trx, valUserId));
    await recordAudit(trx, { actor, action: 'user.sessions.revoke', subject: valUserId, result: 'success', details: outcome });
    return outcome;
  });
}

/** Binds VAL UE IDs to a user (TS 29.549 ValTargetUe.valUeId); returns how many were new. */
export async function bindUeIds(db: Db, actor: Actor, valUserId: string, ueIds: string[]): Promise<number> {
  const bound = await bindUserUeIds(db, valUserId, ueIds);
  await recordAudit(db, { actor, action: 'user.ue.add', subject: valUserId, result: 'success', details: { ueIds: ueIds.length, bound } });
  return bound;
}

export async function unbindUeIds(db: Db, actor: Actor, valUserId: string, ueIds: string[]): Promise<number> {
  const unbound = await unbindUserUeIds(db, valUserId, ueIds);
  await recordAudit(db, { actor, action: 'user.ue.remove', subject: valUserId, result: 'success', details: { ueIds: ueIds.length, unbound } });
  return unbound;
}

export async function listUeIds(db: Db, valUserId: string): Promise<string[]> {
  return userUeIds(db, valUserId);
}

function summary(row: { val_user_id: string; status: UserStatus; password_hash: string | null; created_at: Date; updated_at: Date }): UserSummary {
  return {
    valUserId: row.val_user_id,
    status: row.status,
    hasPassword: row.password_hash !== null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

function countRecords(records: Record<string, number>): { sessions: number; grants: number; tokens: number } {
  const { Session: sessions = 0, Grant: grants = 0, ...rest } = records;
  return { sessions, grants, tokens: Object.values(rest).reduce((a, b) => a + b, 0) };
}
