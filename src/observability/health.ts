// Readiness (/readyz): this instance can serve requests, i.e. its database answers, carries the current schema, and
// signing keys are loaded.
import type { Db } from '../db/knex.ts';
import { migrationsCurrent } from '../db/migrate.ts';

export type Readiness = { ready: boolean; checks: { database: boolean; migrations: boolean; keys: boolean } };

export async function checkReadiness(db: Db, keysLoaded: boolean): Promise<Readiness> {
  const checks = { database: false, migrations: false, keys: keysLoaded };
  try {
    await db.raw('select 1');
    checks.database = true;
    checks.migrations = await migrationsCurrent(db);
  } catch {
    // reported as not ready
  }
  return { ready: Object.values(checks).every(Boolean), checks };
}
