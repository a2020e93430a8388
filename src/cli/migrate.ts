// CLI: migrate — applies pending migrations (the server also does this at start).
import { loadConfig } from '../config/env.ts';
import { openDatabase } from '../db/database.ts';
import { migrateLatest } from '../db/migrate.ts';
import type { CliIo } from './context.ts';

export async function migrateCommand(_args: string[], io: CliIo): Promise<void> {
  const config = loadConfig(io.env);
  const database = await openDatabase(config, { migrate: false, log: (l) => io.stderr.write(l + '\n') });
  try {
    const applied = await migrateLatest(database.db);
    io.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'database is up to date\n');
  } finally {
    await database.close();
  }
}
