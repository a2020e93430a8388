// SQL of `user import`'s checkpoint (user_imports); the batch's users and service mappings go through the stores of
// their tables (src/users/store.ts, src/provisioning/store.ts).
import type { Knex } from 'knex';
import type { Db } from '../db/knex.ts';
import { OPERATOR } from '../provisioning/operator.ts';
import { addServiceUserPairs } from '../provisioning/store.ts';

export type ImportRow = { valUserId: string; passwordHash: string; status: 'active' | 'disabled' | undefined; services: string[] };
export type Rejection = { line: number; reason: string };

export type Checkpoint = {
  file_sha256: string;
  file_name: string;
  lines_done: number;
  created: number;
  updated: number;
  rejected: number;
  rejections: Rejection[];
  /** VAL service mappings added by every run of this file so far. */
  services_added: number;
  started_at: Date;
  finished_at: Date | null;
};

/** Imported mappings are the operator's, like `service grant` (and `service revoke` removes them). */
export const IMPORT_PROVISIONER = OPERATOR;

export async function findCheckpoint(db: Db, sha256: string): Promise<Checkpoint | undefined> {
  return db('user_imports').where({ file_sha256: sha256 }).first();
}

/** Starts (or with `restart`, starts over) the checkpoint of a file; returns it. */
export async function openCheckpoint(db: Db, sha256: string, fileName: string, restart: boolean): Promise<Checkpoint> {
  if (restart) await db('user_imports').where({ file_sha256: sha256 }).delete();
  await db('user_imports').insert({ file_sha256: sha256, file_name: fileName }).onConflict('file_sha256').ignore();
  return (await findCheckpoint(db, sha256))!;
}

/** Adds the (VAL service, VAL user) mappings the CSV names; never removes one. */
export async function addImportedServices(trx: Knex.Transaction, rows: ImportRow[]): Promise<number> {
  const services: string[] = [];
  const users: string[] = [];
  for (const r of rows) for (const s of r.services) (services.push(s), users.push(r.valUserId));
  return addServiceUserPairs(trx, services, users, IMPORT_PROVISIONER);
}

/**
 * Moves the checkpoint past a committed batch, in the batch's transaction. The compare on lines_done makes
 * two imports of the same file at once fail instead of double-counting.
 */
export async function advanceCheckpoint(
  trx: Knex.Transaction,
  sha256: string,
  fromLine: number,
  step: { toLine: number; created: number; updated: number; rejected: number; servicesAdded: number; rejections: Rejection[] },
): Promise<void> {
  const n = await trx('user_imports')
    .where({ file_sha256: sha256, lines_done: fromLine })
    .update({
      lines_done: step.toLine,
      created: trx.raw('created + ?', [step.created]),
      updated: trx.raw('updated + ?', [step.updated]),
      rejected: trx.raw('rejected + ?', [step.rejected]),
      services_added: trx.raw('services_added + ?', [step.servicesAdded]),
      rejections: step.rejections.length ? trx.raw('rejections || ?::jsonb', [JSON.stringify(step.rejections)]) : trx.raw('rejections'),
      updated_at: trx.fn.now(),
    });
  if (n === 0) throw new ConcurrentImportError();
}

/** Forgets the checkpoint of a file whose header was refused: nothing of it was imported (no line committed). */
export async function dropEmptyCheckpoint(db: Db, sha256: string): Promise<void> {
  await db('user_imports').where({ file_sha256: sha256, lines_done: 0 }).whereNull('finished_at').delete();
}

export async function finishCheckpoint(db: Db, sha256: string): Promise<void> {
  await db('user_imports').where({ file_sha256: sha256 }).update({ finished_at: db.fn.now(), updated_at: db.fn.now() });
}

export class ConcurrentImportError extends Error {
  constructor() {
    super('another import of this file is running (its checkpoint moved); wait for it or stop it first');
  }
}
