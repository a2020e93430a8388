// CLI: keys rotate | export.
import { recordAudit } from '../audit/store.ts';
import { ensureSigningKeys, exportPublicJwks, keyRetentionSeconds, rotateSigningKeys } from '../oidc/keys.ts';
import { CliError, withDatabase, type CliIo } from './context.ts';

export async function keysCommand(args: string[], io: CliIo): Promise<void> {
  const [sub] = args;
  if (sub === 'rotate') {
    await withDatabase(io, async ({ database: { db }, secrets, out }) => {
      const kids = await rotateSigningKeys(db, secrets.keyEncryptionKey);
      await recordAudit(db, { actor: 'cli', action: 'keys.rotate', result: 'success', details: { kids } });
      out(`rotated signing keys; now active: ${kids.join(', ')} (running servers switch within seconds; retired keys stay in the JWKS until tokens they signed expire)`);
    });
    return;
  }
  if (sub === 'export') {
    await withDatabase(io, async ({ database: { db }, secrets, config, out }) => {
      await ensureSigningKeys(db, secrets.keyEncryptionKey);
      out(JSON.stringify(await exportPublicJwks(db, keyRetentionSeconds(config)), null, 2));
    });
    return;
  }
  throw new CliError('usage: keys rotate · keys export');
}
