// What every CLI command gets: validated config, the shared database, secrets and output streams.
import type { Readable, Writable } from 'node:stream';
import { loadConfig, type Config } from '../config/env.ts';
import { loadSecrets, type Secrets } from '../config/secret.ts';
import { openDatabase, type Database } from '../db/database.ts';

export type CliIo = {
  env: NodeJS.ProcessEnv;
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
};

export type CliContext = {
  config: Config;
  secrets: Secrets;
  database: Database;
  out(line: string): void;
  io: CliIo;
};

/** Help texts of a command group: '' for the group, one entry per subcommand (printed by `… --help`). */
export type CommandHelp = Record<string, string>;

/** A failure the operator can act on: printed as one line, exit code 1. */
export class CliError extends Error {}

/** The reader of stdout went away (`seal-idms … | head -1`): the command stops, quietly and successfully. */
export class OutputClosedError extends Error {}

/** One line on stdout; throws OutputClosedError once the pipe is closed, so a long listing stops early. */
export function writeLine(io: CliIo, line: string): void {
  if (io.stdout.destroyed || io.stdout.writableEnded) throw new OutputClosedError('stdout closed');
  io.stdout.write(line + '\n');
}

export async function withDatabase<T>(io: CliIo, fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  const config = loadConfig(io.env);
  const secrets = await loadSecrets(config);
  const database = await openDatabase(config, { log: (l) => io.stderr.write(l + '\n') });
  try {
    return await fn({ config, secrets, database, io, out: (line) => writeLine(io, line) });
  } finally {
    await database.close();
  }
}

export async function readAllStdin(stdin: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
