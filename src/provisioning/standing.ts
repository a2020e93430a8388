// Whether a client acts as a VAL server in good standing right now: its SLA row exists, is enabled and not past
// valid-until (TS 23.434 clause 12: the S-IdMS authorizes the VAL server by its service agreement).
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { findValServerByClientIdCached, type ValServerRow } from './store.ts';

/** `none`: the client is not a registered VAL server (other clients are not affected by SLA rules). */
export type ValServerStanding = 'none' | 'active' | 'disabled' | 'expired';

/** The rule for one SLA row; checkSla (src/provisioning/service.ts) applies the same one to provisioning writes. */
export function slaStanding(row: ValServerRow | undefined, now: Date): ValServerStanding {
  if (!row) return 'none';
  if (row.status !== 'active') return 'disabled';
  if (row.valid_until && row.valid_until.getTime() <= now.getTime()) return 'expired';
  return 'active';
}

/** The standing of the VAL server behind `clientId`, through the process's caches (no round trip while they are live). */
export async function valServerStanding(db: Db, caches: Caches, clientId: string, now = new Date()): Promise<ValServerStanding> {
  return slaStanding(await findValServerByClientIdCached(db, caches, clientId), now);
}
