// The admin CLI (`npm run cli -- …`, package bin `seal-idms`): dispatches to one module per command group.
import fs from 'node:fs';
import { ConfigError } from '../config/env.ts';
import { auditCommand, auditHelp } from './audit.ts';
import { clientCommand, clientHelp } from './clients.ts';
import { CliError, OutputClosedError, type CliIo, type CommandHelp } from './context.ts';
import { keysCommand, keysHelp } from './keys.ts';
import { migrateCommand, migrateHelp } from './migrate.ts';
import { partnerCommand, partnerHelp } from './partners.ts';
import { resourceCommand, resourceHelp } from './resources.ts';
import { serveCommand } from './serve.ts';
import { serviceCommand, serviceHelp } from './services.ts';
import { userCommand, userHelp } from './users.ts';
import { valServerCommand, valServerHelp } from './val-servers.ts';

type Command = { run: (args: string[], io: CliIo) => Promise<void>; help: CommandHelp };

const serveHelp: CommandHelp = {
  '': `usage: seal-idms serve
  Runs the S-IdMS until SIGINT/SIGTERM (what npm start runs): migrates the database, then serves HTTP(S) on
  IDMS_HOST:IDMS_PORT with IDMS_WORKERS processes. Configuration: IDMS_* environment variables (docs/configuration.md).`,
};

const COMMANDS: Record<string, Command> = {
  serve: { run: withoutArguments('serve', serveCommand), help: serveHelp },
  migrate: { run: migrateCommand, help: migrateHelp },
  user: { run: userCommand, help: userHelp },
  client: { run: clientCommand, help: clientHelp },
  keys: { run: keysCommand, help: keysHelp },
  service: { run: serviceCommand, help: serviceHelp },
  resource: { run: resourceCommand, help: resourceHelp },
  audit: { run: auditCommand, help: auditHelp },
  partner: { run: partnerCommand, help: partnerHelp },
  'val-server': { run: valServerCommand, help: valServerHelp },
};

const HELP = `seal-idms — SEAL Identity Management Server

  serve                          run the server (npm start)
  migrate                        apply database migrations
  user add <id> (--password P | --password-stdin) [--ue-id ID]…   ·   user passwd <id> (--password P | --password-stdin)
  user disable|enable|show|delete <id>   ·   user sessions revoke <id>
  user list [--search TEXT] [--service ID] [--disabled] [--limit N] [--cursor C] [--json]
  user ue add|remove <id> <valUeId>…   ·   user ue list <id>
  user import <file.csv> [--restart] [--batch-size N] [--workers N] [--progress-interval S]   (val_user_id,password|password_hash[,status][,services])
  client add <clientId> [--secret S] [--public] [--redirect-uri URI]… [--post-logout-redirect-uri URI]… [--grant TYPE]… [--scope S] [--resource-server URI]… [--name N] [--id-token-alg ALG]
  client update <clientId> [--redirect-uri URI]… [--post-logout-redirect-uri URI|none]… [--grant TYPE]… [--name N] [--scope S] [--resource-server URI|none]… [--id-token-alg RS256|ES256|PS256|EdDSA]
  client list [--json]   ·   client show <clientId> [--json]   ·   client rotate-secret <clientId>   ·   client remove <clientId>
  service grant <valServiceId> <valUserId>… [--allow-unknown]   ·   service revoke <valServiceId> <valUserId>…
  service list <valServiceId> [--limit N] [--cursor C]   ·   service list-all [--json]
  service scope <valServiceId> <scope> [--remove]   ·   service scopes [valServiceId]
  val-server add <requesterIdentity> --client-id ID [--secret S] --services a,b [--valid-until ISO] [--max-users N] [--endpoint URL] [--skey-prov]
  val-server list [--json] | show <id> [--json] | disable|enable <id> | configurations <id> [--json]
  val-server update <id> [--services a,b] [--valid-until ISO|none] [--max-users N|none] [--endpoint URL|none] [--[no-]skey-prov]
  resource add <uri> [--scope S] [--alg ES256|RS256] [--ttl S]   ·   resource list | remove <uri>
  keys rotate | keys export
  partner add|update <issuer> [--jwks FILE | --cert PEM] [--max-token-lifetime S] [--token-endpoint URL] [--alg A,B] [--clients a,b] [--services x,y] [--[no-]allow-local-users]
  partner show | remove <issuer>   ·   partner list
  audit list [--limit N] [--action A] [--json]

  seal-idms <command> [<subcommand>] --help   prints that command's help   ·   seal-idms --version

Configuration comes from IDMS_* environment variables (docs/configuration.md).`;

/** Runs one CLI invocation; returns the process exit code. Errors are one line on stderr. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  // A reader that closes the pipe early (`| head -1`) is not an error: writes after it stop the command quietly
  // (context.ts writeLine); without a listener the EPIPE would surface as an uncaught exception with a stack trace.
  const ignore = () => {};
  io.stdout.on('error', ignore);
  io.stderr.on('error', ignore);
  try {
    return await dispatch(argv, io);
  } finally {
    io.stdout.off('error', ignore);
    io.stderr.off('error', ignore);
  }
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    io.stdout.write(`seal-idms ${version()}\n`);
    return 0;
  }
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const topic = name ? args[0] : undefined;
    const command = topic === undefined ? undefined : COMMANDS[topic];
    io.stdout.write((command ? helpOf(command, args.slice(1)) : HELP) + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`seal-idms: unknown command "${oneLine(name).slice(0, 80)}" (see seal-idms --help)\n`);
    return 2;
  }
  // `--help` anywhere (before a `--`) prints help and does nothing else: no database, no server, no migration.
  const beforeTerminator = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  if (beforeTerminator.includes('--help') || beforeTerminator.includes('-h')) {
    io.stdout.write(helpOf(command, args) + '\n');
    return 0;
  }
  try {
    await command.run(args, io);
    return 0;
  } catch (err) {
    if (err instanceof OutputClosedError) return 0;
    io.stderr.write(`seal-idms: ${describe(err)}\n`);
    return 1;
  }
}

/** The help of a subcommand (`user add --help`), else of the whole group. */
function helpOf(command: Command, args: string[]): string {
  const sub = args[0];
  return (sub !== undefined && !sub.startsWith('-') && command.help[sub]) || command.help[''] || HELP;
}

function withoutArguments(name: string, run: Command['run']): Command['run'] {
  return async (args, io) => {
    if (args.length) throw new CliError(`${name} takes no arguments, got "${oneLine(args[0]!).slice(0, 80)}" (see seal-idms ${name} --help)`);
    return run(args, io);
  };
}

function describe(err: unknown): string {
  if (err instanceof CliError || err instanceof ConfigError) return oneLine(err.message);
  if (err instanceof Error && 'code' in err && ['ECONNREFUSED', 'ENOTFOUND', '28P01', '3D000'].includes(String((err as { code?: string }).code))) {
    return `cannot reach the database: ${err.message.split('\n')[0]}`;
  }
  return err instanceof Error ? err.message.split('\n')[0]! : String(err).split('\n')[0]!;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' · ');
}

/** The package's version: package.json is two levels up from src/cli/ and three from dist/src/cli/. */
function version(): string {
  for (let dir = new URL('.', import.meta.url); ;) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'seal-idms' && pkg.version) return pkg.version;
    } catch {
      // not here: look one level up
    }
    const parent = new URL('..', dir);
    if (parent.href === dir.href) return 'unknown';
    dir = parent;
  }
}
