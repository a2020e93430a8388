// Applies the knex migrations in migrations/ (one file per change, forward-only).
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { withUnboundedStatements, type Db } from './knex.ts';

const dir = new URL('../../migrations/', import.meta.url);

// A source that imports the files itself, so the same code runs under Node's type stripping, under jest and from
// the built package (dist/migrations/*.js). A migration is recorded under its source name (`….ts`) either way, so a
// database migrated by the sources is current for the built server and the other way round.
const source: Knex.MigrationSource<string> = {
  async getMigrations() {
    return (await fs.readdir(dir)).filter((f) => /^\d{12}_[a-z0-9_]+\.[jt]s$/.test(f)).sort();
  },
  getMigrationName: (name) => name.replace(/\.js$/, '.ts'),
  // A plain path (not a file: URL) so jest's CommonJS-transformed global setup can load it too.
  getMigration: (name) => import(fileURLToPath(new URL(name, dir))) as Promise<Knex.Migration>,
};

export async function migrateLatest(db: Db): Promise<string[]> {
  // On a connection of its own without the request traffic's statement_timeout: a migration may rewrite a big table.
  return withUnboundedStatements(db, async (unbounded) => {
    const [, applied] = (await unbounded.migrate.latest({ migrationSource: source, tableName: 'knex_migrations' })) as [number, string[]];
    return applied;
  });
}

/** True when every migration in migrations/ has been applied (used by readiness checks). */
export async function migrationsCurrent(db: Db): Promise<boolean> {
  const [, pending] = (await db.migrate.list({ migrationSource: source, tableName: 'knex_migrations' })) as [unknown[], unknown[]];
  return pending.length === 0;
}
