// A provider instance for CLI commands that need oidc-provider's own validation (client metadata).
import type Provider from 'oidc-provider';
import { ensureSigningKeys, loadSigningKeys } from '../oidc/keys.ts';
import { createProvider } from '../oidc/provider.ts';
import { extensions, keyRetentionSeconds } from '../server.ts';
import type { CliContext } from './context.ts';

export async function cliProvider({ config, secrets, database: { db } }: CliContext): Promise<Provider> {
  await ensureSigningKeys(db, secrets.keyEncryptionKey);
  const { keys } = await loadSigningKeys(db, secrets.keyEncryptionKey, keyRetentionSeconds(config));
  // With the extensions, so client metadata may name the grants they register (token exchange, JWT bearer).
  return createProvider({ config, db, secrets, signingKeys: keys }, extensions);
}
