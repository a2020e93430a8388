// Bulk import of VAL users from CSV: streamed, validated, hashed in a worker pool, upserted in batches, resumable.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse, type CsvError } from 'csv-parse';
import { recordAudit } from '../audit/store.ts';
import type { Db } from '../db/knex.ts';
import { importedHashProblem } from './hash-formats.ts';
import { HashPool } from './hash-pool.ts';
import { InvalidIdError, parseId } from './ids.ts';
import {
  addImportedServices,
  advanceCheckpoint,
  dropEmptyCheckpoint,
  finishCheckpoint,
  findCheckpoint,
  openCheckpoint,
  type ImportRow,
  type Rejection,
} from './import-store.ts';
import { upsertUsers } from './store.ts';
import { passwordPolicyProblem } from './passwords.ts';

export const IMPORT_COLUMNS = ['val_user_id', 'password', 'password_hash', 'status', 'services'] as const;
type Column = (typeof IMPORT_COLUMNS)[number];

/** Rejection reasons kept (in the checkpoint and the summary); the count covers them all. */
export const MAX_REASONS = 20;

export type ImportOptions = {
  /** Records per statement and per checkpoint step. */
  batchSize?: number;
  /** Import the file again from its first line even if it was imported (or partly imported) before. */
  restart?: boolean;
  /** Stops after the batches already read are committed; a rerun resumes after them. */
  signal?: AbortSignal;
  /** Hashing workers (default: one per available core). */
  workers?: number;
  onProgress?: (progress: ImportProgress) => void;
  /** Who runs the import, as the audit trail names it (default `cli`). */
  actor?: string;
};

export type ImportProgress = {
  /** Last CSV line committed, and bytes of the file read up to it. */
  line: number;
  bytes: number;
  totalBytes: number;
  /** Bytes that were skipped because an earlier run had committed them (for rates and ETAs of this run). */
  resumedBytes: number;
  created: number;
  updated: number;
  rejected: number;
  /** Records handled by this run (created + updated + rejected since it started). */
  records: number;
};

export type ImportSummary = {
  file: string;
  sha256: string;
  outcome: 'completed' | 'interrupted' | 'already-imported';
  /** Line an earlier run had committed up to (0 for a fresh import). */
  resumedAfterLine: number;
  lastLine: number;
  /** Totals over every run of this file (a resumed import adds to what earlier runs did). */
  created: number;
  updated: number;
  rejected: number;
  rejections: Rejection[];
  servicesAdded: number;
  /** What this run did (equal to the totals unless it resumed an earlier run; zero when already imported). */
  run: { created: number; updated: number; rejected: number; servicesAdded: number };
  finishedAt?: Date;
};

type Columns = { has: Set<Column> };
type Batch = { rows: (ImportRow & { password?: string })[]; rejections: Rejection[]; records: number; lastLine: number; bytes: number };

/** Bad input the operator fixes (missing file, header without the needed columns): the CLI prints it as one line. */
export class ImportFileError extends Error {}

/** What `user import` reads, named in every "wrong file" message. */
export const ACCEPTED_FORMAT =
  'user import reads CSV (UTF-8, comma-separated) whose header line names val_user_id and password or password_hash, optionally status and services';

export async function importUsers(db: Db, file: string, options: ImportOptions = {}): Promise<ImportSummary> {
  const batchSize = options.batchSize ?? 1000;
  const { size: totalBytes, sha256, head } = await digest(file);
  const name = path.basename(file);
  checkFormat(name, head);

  const previous = await findCheckpoint(db, sha256);
  if (previous?.finished_at && !options.restart) {
    return {
      file: name,
      sha256,
      outcome: 'already-imported',
      resumedAfterLine: Number(previous.lines_done),
      lastLine: Number(previous.lines_done),
      created: previous.created,
      updated: previous.updated,
      rejected: previous.rejected,
      rejections: previous.rejections,
      servicesAdded: previous.services_added,
      run: { created: 0, updated: 0, rejected: 0, servicesAdded: 0 },
      finishedAt: previous.finished_at,
    };
  }
  const checkpoint = await openCheckpoint(db, sha256, name, options.restart ?? false);
  const resumedAfterLine = Number(checkpoint.lines_done);
  const totals = {
    created: checkpoint.created,
    updated: checkpoint.updated,
    rejected: checkpoint.rejected,
    servicesAdded: checkpoint.services_added,
    records: 0,
  };
  const run = { created: 0, updated: 0, rejected: 0, servicesAdded: 0 };
  const rejections: Rejection[] = [...checkpoint.rejections];
  let committedLine = resumedAfterLine;
  let resumedBytes = 0;

  // Created at the first password to hash: a file of pre-hashed rows needs no workers.
  let pool: HashPool | undefined;
  const hashPool = () => (pool ??= new HashPool(options.workers));
  const source = fs.createReadStream(file);
  let columns: Columns | undefined;
  const malformed: Rejection[] = [];
  const parser = source.pipe(
    parse({
      // Fields as bytes, decoded strictly below: a line that is not UTF-8 (e.g. a lone surrogate written as CESU-8
      // bytes) is rejected instead of becoming U+FFFD, which would merge distinct VAL user IDs into one.
      encoding: null,
      info: true,
      // Typed as strings by csv-parse; with `encoding: null` the header cells are bytes like every other field.
      columns: (raw: string[]) => {
        const header = decodeHeader(raw as unknown as Uint8Array[], name);
        columns = checkHeader(header, name);
        return header.map((h) => h.trim().toLowerCase());
      },
      // A malformed record is one rejected row, not the end of the import; a malformed header line is the end.
      skip_records_with_error: true,
      on_skip: (err: CsvError | undefined) => {
        const line = Number((err as { lines?: number } | undefined)?.lines ?? 0);
        if (!columns)
          throw new ImportFileError(`${name}: line ${line || 1}: the header line is not valid CSV (${err?.code ?? 'parse error'}); ${ACCEPTED_FORMAT}`);
        malformed.push({ line, reason: `malformed CSV record (${err?.code ?? 'parse error'})` });
        return undefined;
      },
    }),
  );
  source.on('error', (err) => parser.destroy(err));

  const commit = async (batch: Batch, rows: ImportRow[]) => {
    const keep = batch.rejections.slice(0, Math.max(0, MAX_REASONS - rejections.length));
    let step = { created: 0, updated: 0, services: 0 };
    await db.transaction(async (trx) => {
      const { created, updated } = await upsertUsers(trx, rows, columns!.has.has('status'));
      const services = await addImportedServices(trx, rows);
      await advanceCheckpoint(trx, sha256, committedLine, {
        toLine: batch.lastLine,
        created,
        updated,
        rejected: batch.rejections.length,
        servicesAdded: services,
        rejections: keep,
      });
      step = { created, updated, services };
    });
    committedLine = batch.lastLine;
    totals.created += step.created;
    totals.updated += step.updated;
    totals.rejected += batch.rejections.length;
    totals.servicesAdded += step.services;
    totals.records += batch.records;
    run.created += step.created;
    run.updated += step.updated;
    run.rejected += batch.rejections.length;
    run.servicesAdded += step.services;
    rejections.push(...keep);
    options.onProgress?.({ line: committedLine, bytes: batch.bytes, totalBytes, resumedBytes, ...totals });
  };

  // Pipeline: while batch k is committed, batch k+1 is hashed and batch k+2 is read, so the workers never wait
  // for the database. At most two batches are in memory besides the one being read.
  let chain: Promise<void> = Promise.resolve();
  const flush = async (batch: Batch) => {
    const hashed = hashBatch(hashPool, batch);
    hashed.catch(() => {}); // its failure surfaces through `next`
    const previous = chain;
    const next = previous.then(async () => commit(batch, await hashed));
    next.catch(() => {}); // awaited by the next flush or after the loop
    chain = next;
    await previous;
  };

  const seen = new Set<string>();
  let batch = emptyBatch();
  let interrupted = false;
  const take = (rejection: Rejection) => {
    batch.rejections.push(rejection);
    batch.records++;
    batch.lastLine = Math.max(batch.lastLine, rejection.line);
  };
  try {
    for await (const { record: raw, info } of parser as AsyncIterable<{ record: Record<string, Uint8Array>; info: { lines: number; bytes: number } }>) {
      const line = info.lines;
      if (!columns) throw new ImportFileError(`${name}: line 1: no header line; ${ACCEPTED_FORMAT}`);
      // The parser reports a malformed record as soon as it sees it, possibly before yielding earlier records.
      while (malformed.length > 0 && malformed[0]!.line < line) {
        const m = malformed.shift()!;
        if (m.line > resumedAfterLine) take(m);
      }
      const record = decodeRecord(raw);
      let checked = 'reason' in record ? record : checkRow(record.fields, columns!);
      if ('row' in checked) {
        const id = checked.row.valUserId;
        if (seen.has(id)) checked = { reason: `duplicate VAL user ID ${id} (an earlier line has it)` };
        else seen.add(id);
      }
      if (line <= resumedAfterLine) {
        resumedBytes = info.bytes; // committed by an earlier run: parsed only to know the IDs it holds
        continue;
      }
      if ('row' in checked) {
        batch.rows.push(checked.row);
        batch.records++;
        batch.lastLine = line;
      } else {
        take({ line, reason: checked.reason });
      }
      batch.bytes = info.bytes;
      if (batch.records >= batchSize) {
        await flush(batch);
        batch = emptyBatch();
        if (options.signal?.aborted) {
          interrupted = true;
          break;
        }
      }
    }
    if (!interrupted) {
      for (const m of malformed.splice(0)) if (m.line > resumedAfterLine) take(m);
      if (batch.records > 0) {
        batch.bytes = totalBytes;
        await flush(batch);
      }
    }
    await chain;
  } catch (err) {
    await chain.catch(() => {});
    // A refused file leaves nothing behind, not even an empty checkpoint.
    if (!columns) await dropEmptyCheckpoint(db, sha256);
    if (!columns && err instanceof Error && !(err instanceof ImportFileError)) {
      throw err.cause instanceof ImportFileError ? err.cause : new ImportFileError(`${name}: line 1: ${err.message.split('\n')[0]}; ${ACCEPTED_FORMAT}`);
    }
    throw err;
  } finally {
    source.destroy();
    await pool?.close();
  }
  if (!columns) {
    await dropEmptyCheckpoint(db, sha256);
    throw new ImportFileError(`${name}: empty file (expected a header line: val_user_id,password or val_user_id,password_hash)`);
  }
  if (!interrupted) await finishCheckpoint(db, sha256);

  const summary: ImportSummary = {
    file: name,
    sha256,
    outcome: interrupted ? 'interrupted' : 'completed',
    resumedAfterLine,
    lastLine: committedLine,
    created: totals.created,
    updated: totals.updated,
    rejected: totals.rejected,
    rejections,
    servicesAdded: totals.servicesAdded,
    run,
  };
  await recordAudit(db, {
    actor: options.actor ?? 'cli',
    action: 'user.import',
    subject: name,
    result: 'success',
    details: {
      sha256,
      outcome: summary.outcome,
      lastLine: committedLine,
      created: totals.created,
      updated: totals.updated,
      rejected: totals.rejected,
      servicesAdded: totals.servicesAdded,
      run,
    },
  });
  return summary;
}

/**
 * Refuses, before anything is written, a file that is plainly not the CSV the import reads (JSON, a spreadsheet,
 * a compressed file): one line naming what it looks like and what is accepted.
 */
function checkFormat(name: string, head: Buffer): void {
  const text = head
    .toString('latin1')
    .replace(/^\xef\xbb\xbf/, '')
    .trimStart();
  const looksLike =
    text.startsWith('{') || text.startsWith('[')
      ? 'JSON'
      : head.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))
        ? 'a ZIP archive (e.g. an .xlsx spreadsheet)'
        : head[0] === 0x1f && head[1] === 0x8b
          ? 'gzip-compressed'
          : head.subarray(0, 8).includes(0)
            ? 'binary (or UTF-16) data'
            : undefined;
  if (looksLike) throw new ImportFileError(`${name}: line 1: the file is ${looksLike}, not CSV; ${ACCEPTED_FORMAT}`);
}

function emptyBatch(): Batch {
  return { rows: [], rejections: [], records: 0, lastLine: 0, bytes: 0 };
}

async function hashBatch(pool: () => HashPool, batch: Batch): Promise<ImportRow[]> {
  const plain = batch.rows.filter((r) => r.password !== undefined);
  const hashes = plain.length ? await pool().hashAll(plain.map((r) => r.password!)) : [];
  plain.forEach((r, i) => (r.passwordHash = hashes[i]!));
  // Passwords leave memory with the batch; only hashes go to the database.
  return batch.rows.map(({ password: _password, ...row }) => row);
}

function checkHeader(header: string[], file: string): Columns {
  const names = header.map((h) => h.trim().toLowerCase());
  const has = new Set<Column>();
  for (const n of names) {
    if (!(IMPORT_COLUMNS as readonly string[]).includes(n)) {
      throw new ImportFileError(`${file}: unknown column "${n.slice(0, 40)}" (columns: ${IMPORT_COLUMNS.join(', ')})`);
    }
    if (has.has(n as Column)) throw new ImportFileError(`${file}: column "${n}" appears twice`);
    has.add(n as Column);
  }
  if (!has.has('val_user_id') || (!has.has('password') && !has.has('password_hash'))) {
    throw new ImportFileError(`${file}: the header must name val_user_id and password or password_hash (got: ${names.join(',').slice(0, 100)})`);
  }
  return { has };
}

const UTF8_BOM = /^\ufeff/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The header line; its first cell may start with a byte order mark (the docs accept one). */
function decodeHeader(raw: Uint8Array[], file: string): string[] {
  try {
    return raw.map((cell, i) => {
      const text = strictUtf8.decode(cell);
      return i === 0 ? text.replace(UTF8_BOM, '') : text;
    });
  } catch {
    throw new ImportFileError(`${file}: the header line is not valid UTF-8`);
  }
}

function decodeRecord(raw: Record<string, Uint8Array>): { fields: Record<string, string> } | { reason: string } {
  const fields: Record<string, string> = {};
  for (const [column, bytes] of Object.entries(raw)) {
    try {
      fields[column] = strictUtf8.decode(bytes);
    } catch {
      return { reason: `${column} is not valid UTF-8 (an unpaired surrogate or another encoding)` };
    }
  }
  return { fields };
}

// Reasons name the problem, never the password or hash that caused it.
function checkRow(record: Record<string, string>, columns: Columns): { row: ImportRow & { password?: string } } | { reason: string } {
  let valUserId: string;
  try {
    valUserId = parseId('VAL user ID', record.val_user_id?.trim());
  } catch (err) {
    if (err instanceof InvalidIdError) return { reason: err.message };
    throw err;
  }
  const password = columns.has.has('password') ? (record.password ?? '') : '';
  const passwordHash = columns.has.has('password_hash') ? (record.password_hash ?? '').trim() : '';
  if (password && passwordHash) return { reason: 'both password and password_hash given' };
  if (!password && !passwordHash) return { reason: 'no password or password_hash' };
  const weak = password ? passwordPolicyProblem(password) : undefined;
  if (weak) return { reason: weak };
  if (passwordHash) {
    const problem = importedHashProblem(passwordHash);
    if (problem) return { reason: problem };
  }
  const statusCell = (record.status ?? '').trim().toLowerCase();
  if (statusCell && statusCell !== 'active' && statusCell !== 'disabled') return { reason: 'status must be active or disabled' };
  const status = columns.has.has('status') ? ((statusCell || 'active') as 'active' | 'disabled') : undefined;
  const services: string[] = [];
  for (const s of (record.services ?? '').split(/[\s;]+/).filter(Boolean)) {
    try {
      services.push(parseId('VAL service ID', s));
    } catch (err) {
      if (err instanceof InvalidIdError) return { reason: err.message };
      throw err;
    }
  }
  return { row: { valUserId, passwordHash, status, services: [...new Set(services)], ...(password ? { password } : {}) } };
}

async function digest(file: string): Promise<{ size: number; sha256: string; head: Buffer }> {
  let size: number;
  try {
    const stat = await fs.promises.stat(file);
    if (!stat.isFile()) throw new ImportFileError(`${file}: not a file`);
    size = stat.size;
  } catch (err) {
    if (err instanceof ImportFileError) throw err;
    throw new ImportFileError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const hash = crypto.createHash('sha256');
  let head = Buffer.alloc(0);
  for await (const chunk of fs.createReadStream(file)) {
    if (head.length < 64) head = Buffer.concat([head, (chunk as Buffer).subarray(0, 64 - head.length)]);
    hash.update(chunk as Buffer);
  }
  return { size, sha256: hash.digest('hex'), head };
}
