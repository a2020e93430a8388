// Storage of VAL users (credentials and status).
import type { Db } from '../db/knex.ts';

export type UserStatus = 'active' | 'disabled';
export type UserRow = { val_user_id: string; password_hash: string | null; status: UserStatus };

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
