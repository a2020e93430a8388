// CLI: audit list — newest events first.
import { parseArgs } from 'node:util';
import { listAudit } from '../audit/store.ts';
import { CliError, withDatabase, type CliIo } from './context.ts';

export async function auditCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'list') throw new CliError('usage: audit list [--limit N] [--action A] [--json]');
  const { values } = parseArgs({ args: rest, options: { limit: { type: 'string' }, action: { type: 'string' }, json: { type: 'boolean' } } });
  const limit = Number(values.limit ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10000) throw new CliError('--limit must be 1 to 10000');
  await withDatabase(io, async ({ database: { readDb: db }, out }) => {
    for (const e of await listAudit(db, { limit, action: values.action })) {
      out(values.json ? JSON.stringify(e) : [e.at.toISOString(), e.actor, e.action, e.subject ?? '-', e.result, JSON.stringify(e.details)].join('\t'));
    }
  });
}
