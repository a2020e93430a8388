// CLI: user import <file.csv> — bulk import with progress (bar on a terminal, plain lines otherwise) and a summary.
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { loadConfig } from '../config/env.ts';
import { openDatabase } from '../db/database.ts';
import { ImportFileError, importUsers, type ImportProgress, type ImportSummary } from '../users/import.ts';
import { CliError, type CliIo } from './context.ts';

const USAGE = 'usage: user import <file.csv> [--restart] [--batch-size N] [--workers N]';

export async function userImportCommand(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { restart: { type: 'boolean' }, 'batch-size': { type: 'string' }, workers: { type: 'string' } },
  });
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new CliError(USAGE);
  const batchSize = wholeNumber('--batch-size', values['batch-size'], 1, 50_000);
  const workers = wholeNumber('--workers', values.workers, 1, 1024);

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
  try {
    const { db } = database;
    const progress = progressReporter(io.stderr);
    const summary = await importUsers(db, file, { batchSize, workers, restart: values.restart, signal: controller.signal, onProgress: progress.update }).catch((err: unknown) => {
      throw err instanceof ImportFileError ? new CliError(err.message) : err;
    });
    progress.end(summary.outcome === 'completed');
    if (summary.outcome !== 'already-imported') {
      await recordAudit(db, {
        actor: 'cli',
        action: 'user.import',
        subject: summary.file,
        result: 'success',
        details: { sha256: summary.sha256, outcome: summary.outcome, lastLine: summary.lastLine, created: summary.created, updated: summary.updated, rejected: summary.rejected },
      });
    }
    for (const line of describeSummary(summary, progress.elapsedSeconds())) io.stdout.write(line + '\n');
    if (summary.outcome === 'interrupted') {
      throw new CliError(`import of ${summary.file} interrupted after line ${summary.lastLine}; run the same command again to resume`);
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await database.close();
  }
}

export function describeSummary(s: ImportSummary, seconds: number): string[] {
  const counts = `${fmt(s.created)} created, ${fmt(s.updated)} updated, ${fmt(s.rejected)} rejected`;
  const lines =
    s.outcome === 'already-imported'
      ? [`${s.file} was already imported (${s.finishedAt?.toISOString() ?? 'earlier'}): ${counts}; --restart imports it again`]
      : [
          `${s.outcome === 'completed' ? 'imported' : 'partly imported'} ${s.file}: ${counts}` +
            (s.resumedAfterLine > 0 ? ` (resumed after line ${s.resumedAfterLine}; counts include the earlier run)` : '') +
            `, ${s.servicesAdded} VAL service mappings added, ${seconds.toFixed(1)} s`,
        ];
  if (s.rejected > 0) {
    lines.push(`rejected rows${s.rejected > s.rejections.length ? ` (first ${s.rejections.length} of ${fmt(s.rejected)})` : ''}:`);
    for (const r of s.rejections) lines.push(`  line ${r.line}: ${r.reason}`);
  }
  return lines;
}

type Reporter = { update(p: ImportProgress): void; end(completed: boolean): void; elapsedSeconds(): number };

/** A redrawn bar with rate and ETA on a terminal; otherwise a plain line every few seconds (logs, CI). */
export function progressReporter(stream: Writable, options: { tty?: boolean; everyMs?: number } = {}): Reporter {
  const tty = options.tty ?? (stream as { isTTY?: boolean }).isTTY === true;
  const everyMs = options.everyMs ?? (tty ? 200 : 5_000);
  const started = Date.now();
  let lastDraw = 0;
  let last: ImportProgress | undefined;

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

  return {
    update(p) {
      last = p;
      const now = Date.now();
      if (now - lastDraw < everyMs) return;
      lastDraw = now;
      stream.write(render(p) + (tty ? '' : '\n'));
    },
    end(completed) {
      if (last) stream.write(render(completed ? { ...last, bytes: last.totalBytes } : last) + '\n');
    },
    elapsedSeconds: () => (Date.now() - started) / 1000,
  };
}

function wholeNumber(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new CliError(`${flag} must be a whole number from ${min} to ${max}`);
  return Number(value);
}

const fmt = (n: number) => n.toLocaleString('en-US');

function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
