// Runs the admin CLI in-process (same code path as `npm run cli`), capturing its output.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { runCli } from '../../src/cli/main.ts';
import { serversHeardChanges } from './server.ts';

export type CliResult = { code: number; stdout: string; stderr: string };

const ROOT = path.resolve(import.meta.dirname, '../..');

export async function cli(env: NodeJS.ProcessEnv, argv: string[], stdin = ''): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await runCli(argv, { env, stdin: Readable.from([stdin]), stdout: out, stderr: err });
  // As an operator's command in its own process: the test servers' caches hear of its changes by NOTIFY.
  await serversHeardChanges();
  return { code, stdout, stderr };
}

/** Like cli() but fails the test with the CLI's own message when the command does not succeed. */
export async function cliOk(env: NodeJS.ProcessEnv, argv: string[], stdin = ''): Promise<string> {
  const r = await cli(env, argv, stdin);
  if (r.code !== 0) throw new Error(`seal-idms ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export type CliProcessResult = CliResult & { signal: NodeJS.Signals | null };

/**
 * Runs the real binary (`node src/main.ts …`, what `npm run cli` and the package bin run) as a child process, for
 * what only a process shows: exit codes, signals, closed pipes. `onStdout` sees each chunk and may close the pipe.
 */
export function cliProcess(
  env: NodeJS.ProcessEnv,
  argv: string[],
  options: {
    stdin?: string;
    onStdout?: (chunk: string, child: ChildProcessWithoutNullStreams) => void;
    onStderr?: (chunk: string) => void;
    onSpawn?: (child: ChildProcessWithoutNullStreams) => void;
  } = {},
): Promise<CliProcessResult> {
  const child = spawn(process.execPath, ['src/main.ts', ...argv], { cwd: ROOT, env: { PATH: process.env.PATH, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    options.onStdout?.(c.toString(), child);
  });
  options.onSpawn?.(child);
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    options.onStderr?.(c.toString());
  });
  child.stdin.end(options.stdin ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => void serversHeardChanges().then(() => resolve({ code: code ?? -1, signal, stdout, stderr }), reject));
  });
}
