// CLI: user import <file.csv> — bulk import with progress (bar on a terminal, plain lines otherwise) and a summary.
import type { Writable } from 'node:stream';
import { loadConfig } from '../config/env.ts';
import { openDatabase } from '../db/database.ts';
import { importUsers, type ImportProgress, type ImportSummary } from '../users/import.ts';
import { parseCommand, wholeNumber } from './args.ts';
import { CliError, type CliIo } from './context.ts';

const USAGE = 'user import <file.csv> [--restart] [--batch-size N] [--workers N] [--progress-interval S]';

export const importHelp = `usage: seal-idms ${USAGE}
  Bulk import of VAL users from CSV (UTF-8, comma-separated) with a header line naming val_user_id and password or
  password_hash (argon2, bcrypt or PBKDF2 hashes from another IdP), optionally status (active|disabled) and services
  (VAL service IDs separated by spaces or semicolons). Streamed, batched (--batch-size, default 1000), hashed on
  --workers threads (default: one per core), resumable: after an interruption the same command continues after the
  last committed batch; --restart imports the file again from its first line. Progress goes to stderr (a redrawn bar
  on a terminal, otherwise one line every --progress-interval seconds, default 5), the summary to stdout.`;

export async function userImportCommand(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommand(
    args,
    { restart: { type: 'boolean' }, 'batch-size': { type: 'string' }, workers: { type: 'string' }, 'progress-interval': { type: 'string' } },
    USAGE,
    { max: 1 },
  );
  const file = positionals[0];
  if (!file) throw new CliError(`missing file; usage: ${USAGE}`);
  const batchSize = wholeNumber('--batch-size', values['batch-size'], 1, 50_000);
  const workers = wholeNumber('--workers', values.workers, 1, 1024);
  const everyMs = seconds('--progress-interval', values['progress-interval']);

  const config = loadConfig(io.env);
  // handlesSignals: an embedded PostgreSQL started here must outlive the first Ctrl-C, until the checkpoint is written.
  const database = await openDatabase(config, { log: (l) => io.stderr.write(l + '\n'), handlesSignals: true });
  // First Ctrl-C: finish the batches in flight and record the checkpoint. A second one kills (the
  // uncommitted batch rolls back, so the checkpoint is still right).
  const controller = new AbortController();
  const interrupt = (signal: string) => () => {
    controller.abort();
    io.stderr.write(`\n${signal}: finishing the batches in progress (again to stop at once); rerun the same command to resume\n`);
  };
  const onInt = interrupt('SIGINT');
  const onTerm = interrupt('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  const progress = progressReporter(io.stderr, { everyMs });
  try {
    // The import records its own audit event (src/users/import.ts).
    const summary = await importUsers(database.db, file, {
      batchSize,
      workers,
      restart: values.restart,
      signal: controller.signal,
      onProgress: progress.update,
      actor: 'cli',
    });
    progress.end(summary.outcome === 'completed');
    for (const line of describeSummary(summary, progress.elapsedSeconds())) io.stdout.write(line + '\n');
    if (summary.outcome === 'interrupted') {
      throw new CliError(`import of ${summary.file} interrupted after line ${summary.lastLine}; run the same command again to resume`);
    }
  } finally {
    progress.close();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await database.close();
  }
}

/** `--progress-interval S`: decimal seconds, 0.05 to 3600. */
function seconds(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n < 0.05 || n > 3600)
    throw new CliError(`${flag} must be a number of seconds from 0.05 to 3600, got "${value.slice(0, 40)}"`);
  return Math.round(n * 1000);
}

export function describeSummary(s: ImportSummary, seconds: number): string[] {
  const counts = `${fmt(s.created)} created, ${fmt(s.updated)} updated, ${fmt(s.rejected)} rejected`;
  const resumed = s.resumedAfterLine > 0;
  const lines =
    s.outcome === 'already-imported'
      ? [`${s.file} was already imported (${s.finishedAt?.toISOString() ?? 'earlier'}): ${counts}; --restart imports it again`]
      : [
          `${s.outcome === 'completed' ? 'imported' : 'partly imported'} ${s.file}: ${counts}` +
            (resumed ? ` (resumed after line ${s.resumedAfterLine}; counts include the earlier run)` : '') +
            `, ${fmt(s.servicesAdded)} VAL service mappings added` +
            // After a resume, the whole import's totals above and this run's share here.
            (resumed
              ? `; this run: ${fmt(s.run.created)} created, ${fmt(s.run.updated)} updated, ${fmt(s.run.rejected)} rejected, ${fmt(s.run.servicesAdded)} mappings added`
              : '') +
            `, ${seconds.toFixed(1)} s`,
        ];
  if (s.rejected > 0) {
    lines.push(`rejected rows${s.rejected > s.rejections.length ? ` (first ${s.rejections.length} of ${fmt(s.rejected)})` : ''}:`);
    for (const r of s.rejections) lines.push(`  line ${r.line}: ${r.reason}`);
  }
  return lines;
}

type Reporter = { update(p: ImportProgress): void; end(completed: boolean): void; close(): void; elapsedSeconds(): number };

/**
 * A redrawn bar with rate and ETA on a terminal (at most every `everyMs`, default 200 ms); otherwise one plain line
 * every `everyMs` (default 5 s) by the clock, whether or not a batch committed meanwhile, and the final line once.
 */
export function progressReporter(stream: Writable, options: { tty?: boolean; everyMs?: number } = {}): Reporter {
  const tty = options.tty ?? (stream as { isTTY?: boolean }).isTTY === true;
  const everyMs = options.everyMs ?? (tty ? 200 : 5_000);
  const started = Date.now();
  let lastDraw = 0;
  let last: ImportProgress | undefined;
  let ended = false;

  const render = (p: ImportProgress) => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const fraction = p.totalBytes > 0 ? Math.min(p.bytes / p.totalBytes, 1) : 1;
    const rate = p.records / seconds;
    const byteRate = (p.bytes - p.resumedBytes) / seconds;
    const eta = byteRate > 0 ? (p.totalBytes - p.bytes) / byteRate : undefined;
    const stats = `${fmt(p.records)} rows, ${fmt(Math.round(rate))} rows/s, ETA ${eta === undefined ? '?' : duration(eta)}`;
    if (!tty) return `progress: ${(fraction * 100).toFixed(1)}% (line ${p.line}), ${stats}, ${fmt(p.rejected)} rejected`;
    const width = 30;
    const full = Math.round(fraction * width);
    return `\r\x1b[K[${'█'.repeat(full)}${'░'.repeat(width - full)}] ${(fraction * 100).toFixed(1).padStart(5)}%  ${stats}`;
  };

  // Logs and CI: the clock drives the lines, since one batch may take longer than the interval to hash and commit.
  const timer = tty
    ? undefined
    : setInterval(
        () =>
          stream.write(
            (last ? render(last) : `progress: 0.0% (line 0), reading and hashing the first batch (${duration((Date.now() - started) / 1000)})`) + '\n',
          ),
        everyMs,
      );
  timer?.unref();
  const close = () => clearInterval(timer);

  return {
    update(p) {
      last = p;
      // The last batch is in: what remains is end()'s final line, which a tick must not print a second time.
      if (p.bytes >= p.totalBytes) close();
      if (!tty) return;
      const now = Date.now();
      if (now - lastDraw < everyMs) return;
      lastDraw = now;
      stream.write(render(p));
    },
    end(completed) {
      close();
      if (ended) return;
      ended = true;
      if (last) stream.write(render(completed ? { ...last, bytes: last.totalBytes } : last) + '\n');
    },
    close,
    elapsedSeconds: () => (Date.now() - started) / 1000,
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');

function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
