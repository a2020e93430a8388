// CLI: keys rotate | export.
import { rotateKeys } from '../oidc/admin.ts';
import { ensureSigningKeys, exportPublicJwks, keyRetentionSeconds } from '../oidc/keys.ts';
import { parseCommand } from './args.ts';
import { CliError, withDatabase, type CliIo, type CommandHelp } from './context.ts';

export const keysHelp: CommandHelp = {
  '': `usage: seal-idms keys rotate | keys export
  rotate   new active signing keys; running servers switch within seconds; retired keys stay in the JWKS until the
           tokens they signed expire
  export   the public JWKS (for partner S-IdMS: partner add … --jwks -)`,
  rotate: 'usage: seal-idms keys rotate\n  New active signing keys; running servers switch within seconds. Audited.',
  export: 'usage: seal-idms keys export\n  Prints the public JWKS (current and retained keys) as JSON.',
};

export async function keysCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'rotate') {
    parseCommand(rest, {}, 'keys rotate', { max: 0 });
    await withDatabase(io, async ({ database: { db }, secrets, out }) => {
      const kids = await rotateKeys(db, secrets.keyEncryptionKey, 'cli');
      out(
        `rotated signing keys; now active: ${kids.join(', ')} (running servers switch within seconds; retired keys stay in the JWKS until tokens they signed expire)`,
      );
    });
    return;
  }
  if (sub === 'export') {
    parseCommand(rest, {}, 'keys export', { max: 0 });
    await withDatabase(io, async ({ database: { db }, secrets, config, out }) => {
      await ensureSigningKeys(db, secrets.keyEncryptionKey);
      out(JSON.stringify(await exportPublicJwks(db, keyRetentionSeconds(config)), null, 2));
    });
    return;
  }
  throw new CliError('usage: keys rotate · keys export');
}
