// VAL UE IDs bound to VAL users: a VAL service an ss-ipp configuration provisions to a bound VAL UE ID (TS 29.549
// ValTargetUe.valUeId) is in that user's tokens. A VAL UE ID belongs to at most one user (docs/provisioning.md).
import type { Db } from '../db/knex.ts';
import { findUser, insertUser } from '../users/store.ts';
import { bindUeIds, ueIdsOfUser, unbindUeIds, UeIdBoundError } from './store.ts';

export { UeIdBoundError };

export class NoSuchUserError extends Error {}

/** Creates a VAL user bound to the given VAL UE IDs: both or neither (a UE ID bound to another user refuses the whole). */
export async function addUserWithUeIds(db: Db, valUserId: string, passwordHash: string, valUeIds: string[]): Promise<void> {
  await db.transaction(async (trx) => {
    await insertUser(trx, valUserId, passwordHash);
    await bindUeIds(trx, valUserId, valUeIds);
  });
}

/** Binds VAL UE IDs to an existing VAL user; returns how many were new. */
export async function bindUserUeIds(db: Db, valUserId: string, valUeIds: string[]): Promise<number> {
  if (!(await findUser(db, valUserId))) throw new NoSuchUserError(`no VAL user ${valUserId}`);
  return bindUeIds(db, valUserId, valUeIds);
}

/** Unbinds VAL UE IDs from a VAL user; returns how many were bound to them. */
export async function unbindUserUeIds(db: Db, valUserId: string, valUeIds: string[]): Promise<number> {
  return unbindUeIds(db, valUserId, valUeIds);
}

export async function userUeIds(db: Db, valUserId: string): Promise<string[]> {
  return ueIdsOfUser(db, valUserId);
}
