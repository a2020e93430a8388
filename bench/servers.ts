// Starting, seeding and measuring the servers under test: seal-idms (as `serve`, in its own processes) and the baseline.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { runCli } from '../src/cli/main.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');

export type ServerProcess = {
  name: string;
  origin: string;
  child: ChildProcess;
  /** Everything the process wrote, for error reports. */
  output(): string;
  stop(): Promise<void>;
};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Spawns a Node process and waits until `ready` answers 200. Its output goes to `logFile`, as an operator's
 * would: read through a pipe by this process, the access log would cost the load generator CPU time.
 */
export async function startProcess(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  origin: string,
  readyPath: string,
  logFile: string,
): Promise<ServerProcess> {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const output = () => {
    const text = safeRead(logFile);
    return text.slice(-20_000);
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited during start-up:\n${output()}`);
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not become ready:\n${output()}`);
    }
    try {
      const res = await fetch(origin + readyPath);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    name,
    origin,
    child,
    output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs one admin CLI command in-process against the server's database; throws with its message on failure. */
export async function cli(env: NodeJS.ProcessEnv, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await runCli(argv, { env, stdin: Readable.from(['']), stdout: out, stderr: err });
  return { code, stdout, stderr };
}

export async function cliOk(env: NodeJS.ProcessEnv, argv: string[]): Promise<string> {
  const r = await cli(env, argv);
  if (r.code !== 0) throw new Error(`seal-idms ${argv.slice(0, 2).join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The process and all its descendants (cluster workers, the embedded PostgreSQL and its backends). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const task of safeReaddir(`/proc/${out[i]}/task`)) {
      const children = safeRead(`/proc/${out[i]}/task/${task}/children`);
      for (const c of children.split(/\s+/)) if (c) out.push(Number(c));
    }
  }
  return out;
}

export type ProcessMemory = {
  pid: number;
  command: string;
  peakRssMb: number;
  rssMb: number;
  /** Of rssMb, pages of mapped files (the node binary above all), which every process of the same binary shares. */
  fileRssMb: number;
  /** Proportional set size now: shared pages divided among the processes sharing them (what a process really costs). */
  pssMb: number;
};

/** Peak (VmHWM) and current (VmRSS, RssFile, Pss) resident memory of each process, from /proc. */
export function memoryOf(pids: number[]): ProcessMemory[] {
  const rows: ProcessMemory[] = [];
  for (const pid of pids) {
    const status = safeRead(`/proc/${pid}/status`);
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    if (!status) continue;
    const command = safeRead(`/proc/${pid}/cmdline`).split('\0').filter(Boolean).join(' ');
    const pss = Number(/^Pss:\s+(\d+) kB/m.exec(safeRead(`/proc/${pid}/smaps_rollup`))?.[1] ?? NaN);
    rows.push({ pid, command, peakRssMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024, fileRssMb: kb('RssFile') / 1024, pssMb: pss / 1024 });
  }
  return rows;
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
