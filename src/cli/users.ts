// CLI: user add | passwd | disable | enable.
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { hashPassword, MAX_PASSWORD_LENGTH } from '../users/passwords.ts';
import { setPassword, setStatus } from '../users/store.ts';
import { addUserWithUeIds, bindUserUeIds, NoSuchUserError, UeIdBoundError, unbindUserUeIds, userUeIds } from '../provisioning/ue-bindings.ts';
import { CliError, readAllStdin, withDatabase, type CliIo } from './context.ts';
import { userImportCommand } from './import.ts';
import { validateId } from './validate.ts';

export async function userCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'import':
      return userImportCommand(rest, io);
    case 'ue':
      return ueCommand(rest, io);
    case 'add':
    case 'passwd': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { password: { type: 'string' }, 'password-stdin': { type: 'boolean' }, ...(sub === 'add' ? { 'ue-id': { type: 'string' as const, multiple: true as const } } : {}) },
      });
      const valUserId = validateId('VAL user ID', positionals[0]);
      const ueIds = [...new Set(((values as { 'ue-id'?: string[] })['ue-id'] ?? []).map((u) => validateId('VAL UE ID (--ue-id)', u)))];
      const password = values['password-stdin'] ? (await readAllStdin(io.stdin)).replace(/\r?\n$/, '') : values.password;
      if (password === undefined) throw new CliError('give the password with --password <p> or --password-stdin');
      if (password.length < 8 || password.length > MAX_PASSWORD_LENGTH) throw new CliError(`password must be 8 to ${MAX_PASSWORD_LENGTH} characters`);
      const hash = await hashPassword(password);
      await withDatabase(io, async ({ database: { db }, out }) => {
        // The user and their VAL UE IDs exist together or not at all.
        if (sub === 'add') await cliErrors(() => addUserWithUeIds(db, valUserId, hash, ueIds));
        else await setPassword(db, valUserId, hash);
        await recordAudit(db, { actor: 'cli', action: `user.${sub}`, subject: valUserId, result: 'success' });
        out(sub === 'add' ? `added VAL user ${valUserId}${ueIds.length ? ` bound to VAL UE ID ${ueIds.join(', ')}` : ''}` : `password changed for VAL user ${valUserId}`);
      });
      return;
    }
    case 'disable':
    case 'enable': {
      const valUserId = validateId('VAL user ID', rest[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        await setStatus(db, valUserId, sub === 'disable' ? 'disabled' : 'active');
        await recordAudit(db, { actor: 'cli', action: `user.${sub}`, subject: valUserId, result: 'success' });
        out(`${sub}d VAL user ${valUserId}`);
      });
      return;
    }
    default:
      throw new CliError(`usage: user add <valUserId> (--password <p> | --password-stdin) [--ue-id ID]… · user passwd <valUserId> (--password <p> | --password-stdin) · user disable|enable <valUserId> · user import <file.csv> · ${UE_USAGE}`);
  }
}

const UE_USAGE = 'user ue add|remove <valUserId> <valUeId>… · user ue list <valUserId>';

/**
 * user ue add | remove | list: the VAL UE IDs bound to a VAL user. A VAL service provisioned to one of them (TS 29.549
 * ValTargetUe.valUeId) is in that user's tokens; a VAL UE ID is bound to at most one user.
 */
async function ueCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, userArg, ...ueArgs] = args;
  if (sub !== 'add' && sub !== 'remove' && sub !== 'list') throw new CliError(`usage: ${UE_USAGE}`);
  const valUserId = validateId('VAL user ID', userArg);
  if (sub === 'list') {
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const ue of await userUeIds(db, valUserId)) out(ue);
    });
    return;
  }
  if (ueArgs.length === 0) throw new CliError(`usage: ${UE_USAGE}`);
  const ueIds = [...new Set(ueArgs.map((u) => validateId('VAL UE ID', u)))];
  await withDatabase(io, async ({ database: { db }, out }) => {
    if (sub === 'add') {
      const n = await cliErrors(() => bindUserUeIds(db, valUserId, ueIds));
      await recordAudit(db, { actor: 'cli', action: 'user.ue.add', subject: valUserId, result: 'success', details: { ueIds: ueIds.length, bound: n } });
      out(`bound ${n} of ${ueIds.length} VAL UE IDs to VAL user ${valUserId}`);
    } else {
      const n = await unbindUserUeIds(db, valUserId, ueIds);
      await recordAudit(db, { actor: 'cli', action: 'user.ue.remove', subject: valUserId, result: 'success', details: { ueIds: ueIds.length, unbound: n } });
      out(`unbound ${n} of ${ueIds.length} VAL UE IDs from VAL user ${valUserId}`);
    }
  });
}

/** The binding rules' refusals as one-line CLI errors. */
async function cliErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UeIdBoundError || err instanceof NoSuchUserError) throw new CliError(err.message);
    throw err;
  }
}
