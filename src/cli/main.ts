// The admin CLI (`npm run cli -- …`, package bin `seal-idms`): dispatches to one module per command group.
import { ConfigError } from '../config/env.ts';
import { auditCommand } from './audit.ts';
import { clientCommand } from './clients.ts';
import { CliError, type CliIo } from './context.ts';
import { keysCommand } from './keys.ts';
import { migrateCommand } from './migrate.ts';
import { partnerCommand } from './partners.ts';
import { resourceCommand } from './resources.ts';
import { serveCommand } from './serve.ts';
import { serviceCommand } from './services.ts';
import { userCommand } from './users.ts';
import { valServerCommand } from './val-servers.ts';
import { UserExistsError, UserNotFoundError } from '../users/store.ts';

type Command = (args: string[], io: CliIo) => Promise<void>;

const COMMANDS: Record<string, Command> = {
  serve: serveCommand,
  migrate: migrateCommand,
  user: userCommand,
  client: clientCommand,
  keys: keysCommand,
  service: serviceCommand,
  resource: resourceCommand,
  audit: auditCommand,
  partner: partnerCommand,
  'val-server': valServerCommand,
};

const HELP = `seal-idms — SEAL Identity Management Server

  serve                          run the server (npm start)
  migrate                        apply database migrations
  user add|passwd <id> (--password P | --password-stdin)
  user disable|enable <id>
  user import <file.csv> [--restart] [--batch-size N] [--workers N]   (val_user_id,password|password_hash[,status][,services])
  client add <clientId> [--secret S] [--public] [--redirect-uri URI]… [--grant TYPE]… [--scope S] [--resource-server URI]… [--name N]
  client update <clientId> [--scope S] [--resource-server URI|none]…   ·   client list | client remove <clientId>
  service grant|revoke <valServiceId> <valUserId>…   ·   service list <valServiceId>
  val-server add <requesterIdentity> --client-id ID [--secret S] --services a,b [--valid-until ISO] [--max-users N] [--endpoint URL]
  val-server list | disable|enable <id> | update <id> [--services a,b] [--valid-until ISO|none] [--max-users N|none] [--endpoint URL|none]
  resource add <uri> [--scope S] [--alg ES256|RS256] [--ttl S]   ·   resource list | remove <uri>
  keys rotate | keys export
  partner add|update <issuer> [--jwks FILE | --cert PEM] [--max-token-lifetime S] [--token-endpoint URL] [--alg A,B] [--clients a,b] [--services x,y] [--[no-]allow-local-users]
  partner show | remove <issuer>   ·   partner list
  audit list [--limit N] [--action A] [--json]

Configuration comes from IDMS_* environment variables (docs/configuration.md).`;

/** Runs one CLI invocation; returns the process exit code. Errors are one line on stderr. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    io.stdout.write(HELP + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`seal-idms: unknown command "${name}" (see seal-idms help)\n`);
    return 2;
  }
  try {
    await command(args, io);
    return 0;
  } catch (err) {
    io.stderr.write(`seal-idms: ${describe(err)}\n`);
    return 1;
  }
}

function describe(err: unknown): string {
  if (err instanceof CliError || err instanceof ConfigError) return err.message;
  if (err instanceof Error && 'code' in err && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) return err.message;
  if (err instanceof UserExistsError || err instanceof UserNotFoundError) return err.message;
  if (err instanceof Error && 'code' in err && ['ECONNREFUSED', 'ENOTFOUND', '28P01', '3D000'].includes(String((err as { code?: string }).code))) {
    return `cannot reach the database: ${err.message}`;
  }
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}
