// A provider instance for CLI commands that need oidc-provider's own validation (client metadata).
import type Provider from 'oidc-provider';
import { NO_CACHE } from '../db/change-feed.ts';
import { ensureSigningKeys, keyRetentionSeconds, loadSigningKeys } from '../oidc/keys.ts';
import { createProvider } from '../oidc/provider.ts';
import type { CliContext } from './context.ts';

export async function cliProvider({ config, secrets, database: { db } }: CliContext): Promise<Provider> {
  await ensureSigningKeys(db, secrets.keyEncryptionKey);
  const { keys } = await loadSigningKeys(db, secrets.keyEncryptionKey, keyRetentionSeconds(config));
  // createProvider registers the grants of src/oidc/grants/index.ts, so client metadata may name them. No caches: the
  // CLI changes what servers cache, and reads what it changes from the tables.
  return createProvider({ config, db, caches: NO_CACHE, secrets, signingKeys: keys });
}
