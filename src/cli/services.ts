// CLI: service grant | revoke | list — the operator's direct access to the VAL service ↔ VAL user mapping.
import { recordAudit } from '../audit/store.ts';
import { addServiceUsers, removeServiceUsers } from '../provisioning/store.ts';
import { CliError, withDatabase, type CliIo } from './context.ts';
import { validateId } from './validate.ts';

export async function serviceCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, serviceArg, ...userArgs] = args;
  if (sub === 'grant' || sub === 'revoke') {
    const valServiceId = validateId('VAL service ID', serviceArg);
    if (userArgs.length === 0) throw new CliError(`usage: service ${sub} <valServiceId> <valUserId>…`);
    const valUserIds = [...new Set(userArgs.map((u) => validateId('VAL user ID', u)))];
    await withDatabase(io, async ({ database: { db }, out }) => {
      const n = sub === 'grant' ? await addServiceUsers(db, valServiceId, valUserIds, 'admin') : await removeServiceUsers(db, valServiceId, valUserIds);
      await recordAudit(db, { actor: 'cli', action: `service.${sub}`, subject: valServiceId, result: 'success', details: { users: valUserIds.length, changed: n } });
      out(`${sub === 'grant' ? 'granted' : 'revoked'} ${valServiceId}: ${n} of ${valUserIds.length} VAL users changed`);
    });
    return;
  }
  if (sub === 'list') {
    const valServiceId = validateId('VAL service ID', serviceArg);
    await withDatabase(io, async ({ database: { db }, out }) => {
      // distinct: a user provisioned by two VAL servers for a shared service has two entries.
      const users = await db('val_service_users').distinct('val_user_id').where({ val_service_id: valServiceId }).orderBy('val_user_id').pluck('val_user_id');
      for (const u of users) out(u);
    });
    return;
  }
  throw new CliError('usage: service grant|revoke <valServiceId> <valUserId>… · service list <valServiceId>');
}
