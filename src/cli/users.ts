// CLI: user add | passwd | disable | enable | show | list | delete | sessions revoke | ue | import — parse, call
// src/users/service.ts, print.
import { readAllStdin, CliError, withDatabase, type CliIo, type CommandHelp } from './context.ts';
import { parseCommand, wholeNumber } from './args.ts';
import { userImportCommand, importHelp } from './import.ts';
import { validateId } from './validate.ts';
import {
  addUser,
  bindUeIds,
  changePassword,
  deleteUser,
  listUeIds,
  listUsers,
  revokeUserSessions,
  setUserStatus,
  showUser,
  unbindUeIds,
  type UserSummary,
} from '../users/service.ts';

const ACTOR = 'cli';

export const userHelp: CommandHelp = {
  '': `usage: seal-idms user <subcommand>
  add <valUserId> (--password P | --password-stdin) [--ue-id ID]…   create a VAL user (password: 8 to 1024 characters)
  passwd <valUserId> (--password P | --password-stdin)              set a new password
  disable|enable <valUserId>                                        a disabled user cannot log in, refresh or be introspected as active
  show <valUserId> [--json]                                         status, VAL services, VAL UE IDs, timestamps
  list [--search TEXT] [--service ID] [--disabled] [--limit N] [--cursor C] [--json]
  delete <valUserId>                                                credentials, mappings, VAL UE IDs, sessions, grants, tokens
  sessions revoke <valUserId>                                       end sessions, grants and refresh tokens
  ue add|remove <valUserId> <valUeId>…   ·   ue list <valUserId>   VAL UE IDs bound to the user
  import <file.csv> [--restart] [--batch-size N] [--workers N] [--progress-interval S]`,
  add: `usage: seal-idms user add <valUserId> (--password P | --password-stdin) [--ue-id ID]…
  Creates a VAL user. The password is 8 to 1024 characters (--password-stdin reads it from stdin, one trailing newline
  dropped). --ue-id binds a VAL UE ID (repeatable); the user and the bindings are created together or not at all.`,
  passwd: `usage: seal-idms user passwd <valUserId> (--password P | --password-stdin)
  Sets a new password (8 to 1024 characters). Sessions and refresh tokens stay valid: user sessions revoke ends them.`,
  disable: `usage: seal-idms user disable <valUserId>
  A disabled user cannot log in or refresh, and their tokens are inactive at introspection.`,
  enable: `usage: seal-idms user enable <valUserId>
  Lets a disabled user log in again.`,
  show: `usage: seal-idms user show <valUserId> [--json]
  The user's status, whether a password is set, VAL service IDs (as tokens carry them), bound VAL UE IDs, created/updated.`,
  list: `usage: seal-idms user list [--search TEXT] [--service ID] [--disabled] [--limit N] [--cursor C] [--json]
  Users in VAL user ID order, one per line (tab-separated: ID, status, created; --json: one JSON object per line).
  --search: ID contains TEXT (case-insensitive) · --service: provisioned for that VAL service · --disabled: disabled only.
  --limit N (1 to 10000, default 100) users per page; when there are more, "next page: --cursor C" goes to stderr.`,
  delete: `usage: seal-idms user delete <valUserId>
  Deletes the user's credentials, every VAL service mapping of the user (all provisioners), bound VAL UE IDs, and their
  sessions, grants and tokens (refresh tokens fail at once; access tokens are inactive at introspection). Audited.`,
  sessions: `usage: seal-idms user sessions revoke <valUserId>
  Ends the user's sessions, grants and refresh tokens (the next refresh is invalid_grant; access tokens are inactive
  at introspection). The user keeps their credentials and may log in again. Audited.`,
  ue: `usage: seal-idms user ue add|remove <valUserId> <valUeId>…   ·   user ue list <valUserId>
  VAL UE IDs bound to a VAL user: a VAL service provisioned to one of them (TS 29.549 ValTargetUe.valUeId) is in that
  user's tokens. A VAL UE ID is bound to at most one user.`,
  import: importHelp,
};

export async function userCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'import':
      return userImportCommand(rest, io);
    case 'ue':
      return ueCommand(rest, io);
    case 'add':
    case 'passwd':
      return setCredentials(sub, rest, io);
    case 'disable':
    case 'enable': {
      const { positionals } = parseCommand(rest, {}, `user ${sub} <valUserId>`, { max: 1 });
      const valUserId = validateId('VAL user ID', positionals[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        await setUserStatus(db, ACTOR, valUserId, sub === 'disable' ? 'disabled' : 'active');
        out(`${sub}d VAL user ${valUserId}`);
      });
      return;
    }
    case 'show': {
      const { values, positionals } = parseCommand(rest, { json: { type: 'boolean' } }, 'user show <valUserId> [--json]', { max: 1 });
      const valUserId = validateId('VAL user ID', positionals[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        const user = await showUser(db, valUserId);
        if (values.json) return out(JSON.stringify(user));
        out(`VAL user ID: ${user.valUserId}`);
        out(`status: ${user.status}`);
        out(`password: ${user.hasPassword ? 'set' : 'none'}`);
        out(`VAL service IDs: ${user.valServiceIds.join(', ') || '(none: the user cannot get tokens)'}`);
        out(`VAL UE IDs: ${user.valUeIds.join(', ') || '(none)'}`);
        out(`created: ${user.createdAt}`);
        out(`updated: ${user.updatedAt}`);
      });
      return;
    }
    case 'list':
      return list(rest, io);
    case 'delete': {
      const { positionals } = parseCommand(rest, {}, 'user delete <valUserId>', { max: 1 });
      const valUserId = validateId('VAL user ID', positionals[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        const d = await deleteUser(db, ACTOR, valUserId);
        out(
          `deleted VAL user ${valUserId}: ${d.mappings} VAL service mappings, ${d.ueIds} VAL UE IDs, ${d.sessions} sessions, ${d.grants} grants, ${d.tokens} tokens and codes`,
        );
      });
      return;
    }
    case 'sessions': {
      const usage = 'user sessions revoke <valUserId>';
      const { positionals } = parseCommand(rest, {}, usage, { max: 2 });
      if (positionals[0] !== 'revoke') throw new CliError(`usage: ${usage}`);
      const valUserId = validateId('VAL user ID', positionals[1]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        const r = await revokeUserSessions(db, ACTOR, valUserId);
        out(`revoked ${r.sessions} sessions, ${r.grants} grants and ${r.tokens} tokens and codes of VAL user ${valUserId}`);
      });
      return;
    }
    default:
      throw new CliError(
        `${sub === undefined ? 'missing' : `unknown`} user subcommand${sub === undefined ? '' : ` "${sub.slice(0, 40)}"`} (see seal-idms user --help)`,
      );
  }
}

async function setCredentials(sub: 'add' | 'passwd', args: string[], io: CliIo): Promise<void> {
  const usage =
    sub === 'add' ? 'user add <valUserId> (--password P | --password-stdin) [--ue-id ID]…' : 'user passwd <valUserId> (--password P | --password-stdin)';
  const { values, positionals } = parseCommand(
    args,
    {
      password: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      ...(sub === 'add' ? { 'ue-id': { type: 'string' as const, multiple: true as const } } : {}),
    },
    usage,
    { max: 1 },
  );
  const valUserId = validateId('VAL user ID', positionals[0]);
  const ueIds = [...new Set(((values as { 'ue-id'?: string[] })['ue-id'] ?? []).map((u) => validateId('VAL UE ID (--ue-id)', u)))];
  if (values.password !== undefined && values['password-stdin']) throw new CliError('give the password with --password <p> or --password-stdin, not both');
  const password = values['password-stdin'] ? (await readAllStdin(io.stdin)).replace(/\r?\n$/, '') : values.password;
  if (password === undefined) throw new CliError('give the password with --password <p> or --password-stdin');
  await withDatabase(io, async ({ database: { db }, out }) => {
    if (sub === 'add') {
      await addUser(db, ACTOR, { valUserId, password, ueIds });
      out(`added VAL user ${valUserId}${ueIds.length ? ` bound to VAL UE ID ${ueIds.join(', ')}` : ''}`);
    } else {
      await changePassword(db, ACTOR, valUserId, password);
      out(`password changed for VAL user ${valUserId}`);
    }
  });
}

async function list(args: string[], io: CliIo): Promise<void> {
  const { values } = parseCommand(
    args,
    {
      search: { type: 'string' },
      service: { type: 'string' },
      disabled: { type: 'boolean' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      json: { type: 'boolean' },
    },
    'user list [--search TEXT] [--service ID] [--disabled] [--limit N] [--cursor C] [--json]',
    { max: 0 },
  );
  const limit = wholeNumber('--limit', values.limit, 1, 10_000);
  const valServiceId = values.service === undefined ? undefined : validateId('VAL service ID (--service)', values.service);
  await withDatabase(io, async ({ database: { db }, out }) => {
    const page = await listUsers(db, { search: values.search, valServiceId, disabled: values.disabled, limit, cursor: values.cursor });
    for (const u of page.items) out(values.json ? JSON.stringify(u) : line(u));
    // stderr: stdout stays one user per line for scripts; the cursor is what to pass for the next page.
    if (page.nextCursor) io.stderr.write(`next page: --cursor ${page.nextCursor}\n`);
  });
}

function line(u: UserSummary): string {
  return [u.valUserId, u.status, u.createdAt].join('\t');
}

/** user ue add | remove | list: the VAL UE IDs bound to a VAL user. */
async function ueCommand(args: string[], io: CliIo): Promise<void> {
  const usage = 'user ue add|remove <valUserId> <valUeId>… · user ue list <valUserId>';
  const { positionals } = parseCommand(args, {}, usage);
  const [sub, userArg, ...ueArgs] = positionals;
  if (sub !== 'add' && sub !== 'remove' && sub !== 'list') throw new CliError(`usage: ${usage}`);
  const valUserId = validateId('VAL user ID', userArg);
  if (sub === 'list') {
    if (ueArgs.length) throw new CliError(`unexpected argument "${ueArgs[0]!.slice(0, 80)}"; usage: ${usage}`);
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const ue of await listUeIds(db, valUserId)) out(ue);
    });
    return;
  }
  if (ueArgs.length === 0) throw new CliError(`usage: ${usage}`);
  const ueIds = [...new Set(ueArgs.map((u) => validateId('VAL UE ID', u)))];
  await withDatabase(io, async ({ database: { db }, out }) => {
    if (sub === 'add') {
      const n = await bindUeIds(db, ACTOR, valUserId, ueIds);
      out(`bound ${n} of ${ueIds.length} VAL UE IDs to VAL user ${valUserId}`);
    } else {
      const n = await unbindUeIds(db, ACTOR, valUserId, ueIds);
      out(`unbound ${n} of ${ueIds.length} VAL UE IDs from VAL user ${valUserId}`);
    }
  });
}
