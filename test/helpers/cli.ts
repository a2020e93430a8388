// Runs the admin CLI in-process (same code path as `npm run cli`), capturing its output.
import { PassThrough, Readable } from 'node:stream';
import { runCli } from '../../src/cli/main.ts';

export type CliResult = { code: number; stdout: string; stderr: string };

export async function cli(env: NodeJS.ProcessEnv, argv: string[], stdin = ''): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await runCli(argv, { env, stdin: Readable.from([stdin]), stdout: out, stderr: err });
  return { code, stdout, stderr };
}

/** Like cli() but fails the test with the CLI's own message when the command does not succeed. */
export async function cliOk(env: NodeJS.ProcessEnv, argv: string[], stdin = ''): Promise<string> {
  const r = await cli(env, argv, stdin);
  if (r.code !== 0) throw new Error(`seal-idms ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
