// CLI: audit list — newest events first.
import { listAuditEvents } from '../audit/service.ts';
import { parseCommand, wholeNumber } from './args.ts';
import { CliError, withDatabase, type CliIo, type CommandHelp } from './context.ts';

const USAGE = 'audit list [--limit N] [--action A] [--json]';

export const auditHelp: CommandHelp = {
  '': `usage: seal-idms ${USAGE}
  The newest audit events first (default 50, at most 10000): time, actor, action, subject, result, details
  (tab-separated; --json: one object per line). --action filters by action, e.g. user.delete or client.rotate-secret.`,
};
auditHelp.list = auditHelp['']!;

export async function auditCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'list') throw new CliError(`usage: ${USAGE}`);
  const { values } = parseCommand(rest, { limit: { type: 'string' }, action: { type: 'string' }, json: { type: 'boolean' } }, USAGE, { max: 0 });
  const limit = wholeNumber('--limit', values.limit, 1, 10_000) ?? 50;
  await withDatabase(io, async ({ database: { readDb: db }, out }) => {
    for (const e of await listAuditEvents(db, { limit, action: values.action })) {
      out(values.json ? JSON.stringify(e) : [e.at.toISOString(), e.actor, e.action, e.subject ?? '-', e.result, JSON.stringify(e.details)].join('\t'));
    }
  });
}
