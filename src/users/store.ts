// Storage of VAL users (credentials and status): the one module with SQL on val_users.
import type { Knex } from 'knex';
import type { Db } from '../db/knex.ts';

export type UserStatus = 'active' | 'disabled';
export type UserRow = { val_user_id: string; password_hash: string | null; status: UserStatus };

/**
 * The status of the VAL user whose ID the statement parameter `idParam` (e.g. `$1`) holds, null without a record: for
 * a statement of another store that must read it in the same round trip (readUserStanding, src/provisioning/store.ts).
 */
export function userStatusSql(idParam: string): string {
  return `(select u.status from val_users u where u.val_user_id = ${idParam})`;
}

/**
 * The credentials (val_user_id, password_hash, status) of the VAL user whose ID the statement parameter `idParam` holds,
 * no row without a record: for a statement of another store that reads them in the same round trip (the login form's
 * first statement, src/users/throttle.ts beginPasswordCheck, which returns them only to an attempt it allowed).
 */
export function userCredentialsSql(idParam: string): string {
  return `select u.val_user_id, u.password_hash, u.status from val_users u where u.val_user_id = ${idParam}`;
}

export async function findUser(db: Db, valUserId: string): Promise<UserRow | undefined> {
  if (valUserId.includes('\0')) return undefined; // cannot be stored in PostgreSQL text, so no such user
  return db('val_users').select('val_user_id', 'password_hash', 'status').where({ val_user_id: valUserId }).first();
}

/** Inserts a user, or fails with UserExistsError when the VAL user ID is taken. */
export async function insertUser(db: Db, valUserId: string, passwordHash: string): Promise<void> {
  const inserted = await db('val_users')
    .insert({ val_user_id: valUserId, password_hash: passwordHash })
    .onConflict('val_user_id')
    .ignore()
    .returning('val_user_id');
  if (inserted.length === 0) throw new UserExistsError(valUserId);
}

export async function setPassword(db: Db, valUserId: string, passwordHash: string): Promise<void> {
  const n = await db('val_users').where({ val_user_id: valUserId }).update({ password_hash: passwordHash, updated_at: db.fn.now() });
  if (n === 0) throw new UserNotFoundError(valUserId);
}

export async function setStatus(db: Db, valUserId: string, status: UserStatus): Promise<void> {
  const n = await db('val_users').where({ val_user_id: valUserId }).update({ status, updated_at: db.fn.now() });
  if (n === 0) throw new UserNotFoundError(valUserId);
}

export class UserExistsError extends Error {
  constructor(valUserId: string) {
    super(`VAL user ${valUserId} already exists`);
  }
}

export class UserNotFoundError extends Error {
  constructor(valUserId: string) {
    super(`no VAL user ${valUserId}`);
  }
}

/**
 * Swaps one stored hash for another (re-hash at login), only if the stored one is still `previous`: a password
 * changed meanwhile by the CLI or an import wins. Returns whether it was replaced.
 */
export async function replacePasswordHash(db: Db, valUserId: string, previous: string, next: string): Promise<boolean> {
  const n = await db('val_users').where({ val_user_id: valUserId, password_hash: previous }).update({ password_hash: next, updated_at: db.fn.now() });
  return n > 0;
}

export type UserDetail = UserRow & { created_at: Date; updated_at: Date };

/** A user with its timestamps (the admin's `user show`). */
export async function findUserDetail(db: Db, valUserId: string): Promise<UserDetail | undefined> {
  if (valUserId.includes('\0')) return undefined;
  return db('val_users').select('val_user_id', 'password_hash', 'status', 'created_at', 'updated_at').where({ val_user_id: valUserId }).first();
}

export type UserFilter = {
  /** Substring of the VAL user ID, matched literally (no wildcards), case-insensitively. */
  search?: string;
  /**
   * Only users meeting this condition on their VAL user ID column: the mapping tables' store builds it
   * (provisionedForService in src/provisioning/store.ts), so their SQL stays there.
   */
  where?: (userIdColumn: string) => { sql: string; bindings: readonly Knex.RawBinding[] };
  /** Only disabled users. */
  disabled?: boolean;
  /** Keyset pagination: users after this VAL user ID, in ID order. */
  after?: string;
  limit: number;
};

/** One page of users in VAL user ID order; the (val_user_id) primary key serves the order and the keyset. */
export async function listUsers(db: Db, filter: UserFilter): Promise<UserDetail[]> {
  const q = db('val_users as u').select('u.val_user_id', 'u.password_hash', 'u.status', 'u.created_at', 'u.updated_at');
  if (filter.search) q.whereRaw(`strpos(lower(u.val_user_id), lower(?)) > 0`, [filter.search]);
  if (filter.disabled) q.where('u.status', 'disabled');
  if (filter.where) {
    const condition = filter.where('u.val_user_id');
    q.whereRaw(condition.sql, condition.bindings);
  }
  if (filter.after !== undefined) q.where('u.val_user_id', '>', filter.after);
  return q.orderBy('u.val_user_id').limit(filter.limit);
}

/** Which of the given VAL user IDs have credentials here. */
export async function existingUserIds(db: Db, valUserIds: string[]): Promise<Set<string>> {
  if (valUserIds.length === 0) return new Set();
  const rows: string[] = await db('val_users').whereRaw('val_user_id = any(?::text[])', [valUserIds]).pluck('val_user_id');
  return new Set(rows);
}

/**
 * Inserts or updates a batch of users in one statement (the bulk import); returns how many rows were created and
 * updated. Without a status (`withStatus` false), new users are active and existing users keep their status.
 */
export async function upsertUsers(
  db: Db,
  rows: { valUserId: string; passwordHash: string; status: UserStatus | undefined }[],
  withStatus: boolean,
): Promise<{ created: number; updated: number }> {
  if (rows.length === 0) return { created: 0, updated: 0 };
  // xmax = 0 only on a freshly inserted tuple: tells created from updated rows in the same statement.
  const result = await db.raw(
    `insert into val_users as u (val_user_id, password_hash, status)
     select id, hash, coalesce(status, 'active') from unnest(?::text[], ?::text[], ?::text[]) as t(id, hash, status)
     on conflict (val_user_id) do update set
       password_hash = excluded.password_hash,
       status = ${withStatus ? 'excluded.status' : 'u.status'},
       updated_at = now()
     returning (xmax = 0) as created`,
    [rows.map((r) => r.valUserId), rows.map((r) => r.passwordHash), rows.map((r) => r.status ?? null) as string[]],
  );
  const created = (result.rows as { created: boolean }[]).filter((r) => r.created).length;
  return { created, updated: result.rows.length - created };
}

/** Deletes a user's credentials row; false when there was none. */
export async function deleteUserRow(db: Db, valUserId: string): Promise<boolean> {
  return (await db('val_users').where({ val_user_id: valUserId }).delete()) > 0;
}
