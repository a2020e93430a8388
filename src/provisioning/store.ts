// Storage of the VAL service ↔ VAL user mapping (val_service_users): set-based statements, one per batch.
import type { Db } from '../db/knex.ts';

/** The VAL service IDs a VAL user is provisioned for, sorted; served by the (val_user_id, val_service_id) index. */
export async function servicesOfUser(db: Db, valUserId: string): Promise<string[]> {
  return db('val_service_users').where({ val_user_id: valUserId }).orderBy('val_service_id').pluck('val_service_id');
}

/** Adds users to a service (existing pairs are kept); returns how many pairs were new. */
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

/** Removes users from a service; returns how many pairs went. */
export async function removeServiceUsers(db: Db, valServiceId: string, valUserIds: string[]): Promise<number> {
  if (valUserIds.length === 0) return 0;
  const res = await db.raw('delete from val_service_users where val_service_id = ? and val_user_id = any(?::text[])', [valServiceId, valUserIds]);
  return res.rowCount as number;
}
