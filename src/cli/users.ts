// CLI: user add | passwd | disable | enable.
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { hashPassword, MAX_PASSWORD_LENGTH } from '../users/passwords.ts';
import { insertUser, setPassword, setStatus } from '../users/store.ts';
import { CliError, readAllStdin, withDatabase, type CliIo } from './context.ts';
import { userImportCommand } from './import.ts';
import { validateId } from './validate.ts';

export async function userCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'import':
      return userImportCommand(rest, io);
    case 'add':
    case 'passwd': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { password: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
      });
      const valUserId = validateId('VAL user ID', positionals[0]);
      const password = values['password-stdin'] ? (await readAllStdin(io.stdin)).replace(/\r?\n$/, '') : values.password;
      if (password === undefined) throw new CliError('give the password with --password <p> or --password-stdin');
      if (password.length < 8 || password.length > MAX_PASSWORD_LENGTH) throw new CliError(`password must be 8 to ${MAX_PASSWORD_LENGTH} characters`);
      const hash = await hashPassword(password);
      await withDatabase(io, async ({ database: { db }, out }) => {
        if (sub === 'add') await insertUser(db, valUserId, hash);
        else await setPassword(db, valUserId, hash);
        await recordAudit(db, { actor: 'cli', action: `user.${sub}`, subject: valUserId, result: 'success' });
        out(sub === 'add' ? `added VAL user ${valUserId}` : `password changed for VAL user ${valUserId}`);
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
      throw new CliError('usage: user add|passwd <valUserId> (--password <p> | --password-stdin) · user disable|enable <valUserId> · user import <file.csv>');
  }
}
