// CLI: migrate — applies pending migrations (the server also does this at start).
import { loadConfig } from '../config/env.ts';
import { loadSecrets } from '../config/secret.ts';
import { openDatabase } from '../db/database.ts';
import { migrateLatest } from '../db/migrate.ts';
import { convertLegacyPayloads } from '../oidc/adapter.ts';
import { atRestKeys } from '../oidc/at-rest.ts';
import type { CliIo } from './context.ts';

export async function migrateCommand(_args: string[], io: CliIo): Promise<void> {
  const config = loadConfig(io.env);
  const secrets = await loadSecrets(config);
  const database = await openDatabase(config, { migrate: false, log: (l) => io.stderr.write(l + '\n') });
  try {
    const applied = await migrateLatest(database.db);
    io.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'database is up to date\n');
    // Rows stored before bearer values and client secrets were hashed: converted with the key from IDMS_SECRET.
    const converted = await convertLegacyPayloads(database.db, atRestKeys(secrets));
    if (converted) io.stdout.write(`stored ${converted} token, session and client records in hashed form\n`);
  } finally {
    await database.close();
  }
}
