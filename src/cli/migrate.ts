// CLI: migrate — applies pending migrations (the server also does this at start).
import { loadConfig } from '../config/env.ts';
import { loadSecrets } from '../config/secret.ts';
import { openDatabase } from '../db/database.ts';
import { migrateLatest } from '../db/migrate.ts';
import { convertLegacyPayloads } from '../oidc/adapter.ts';
import { atRestKeys } from '../oidc/at-rest.ts';
import { parseCommand } from './args.ts';
import type { CliIo, CommandHelp } from './context.ts';

export const migrateHelp: CommandHelp = {
  '': `usage: seal-idms migrate
  Applies pending database migrations (serve also does this at start) and converts token, session and client records
  stored before IDMS_SECRET keyed them to their hashed form.`,
};

export async function migrateCommand(args: string[], io: CliIo): Promise<void> {
  parseCommand(args, {}, 'migrate', { max: 0 });
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
