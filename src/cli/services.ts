// CLI: service grant | revoke | list | list-all — the operator's direct access to the VAL service ↔ VAL user mapping
// (src/provisioning/operator.ts); service scope | scopes — the scopes VAL service specifications define (TS 33.434 annex A).
import { deregisterServiceScope, registerServiceScope } from '../oidc/admin.ts';
import { listServiceScopes } from '../oidc/service-scopes.ts';
import { grantService, listServices, revokeService, serviceUsers } from '../provisioning/operator.ts';
import { parseCommand, wholeNumber } from './args.ts';
import { CliError, withDatabase, type CliIo, type CommandHelp } from './context.ts';
import { validateId } from './validate.ts';

const ACTOR = 'cli';

export const serviceHelp: CommandHelp = {
  '': `usage: seal-idms service <subcommand>
  grant <valServiceId> <valUserId>… [--allow-unknown]   add users to a VAL service (the operator's grant)
  revoke <valServiceId> <valUserId>…                    remove users from a VAL service, whoever provisioned them
  list <valServiceId> [--limit N] [--cursor C]           the service's VAL users, in ID order
  list-all [--json]                                      every VAL service with its number of VAL users and VAL UE IDs
  scope <valServiceId> <scope> [--remove]                register (or remove) a scope the VAL service defines
  scopes [valServiceId]                                  the registered VAL service scopes`,
  grant: `usage: seal-idms service grant <valServiceId> <valUserId>… [--allow-unknown]
  Adds users to a VAL service (admin path; VAL servers use the provisioning API). A VAL user ID with no credentials
  here is refused unless --allow-unknown: such a mapping is allowed (credentials may come later) but must be asked for.`,
  revoke: `usage: seal-idms service revoke <valServiceId> <valUserId>…
  Removes users from a VAL service, whichever VAL server (or operator grant) provisioned them.`,
  list: `usage: seal-idms service list <valServiceId> [--limit N] [--cursor C]
  The VAL user IDs provisioned for the service by anyone, one per line in ID order. Without --limit: all of them.
  With --limit N (1 to 10000): one page; when there are more, "next page: --cursor C" goes to stderr.`,
  'list-all': `usage: seal-idms service list-all [--json]
  Every VAL service that has a mapping: ID, distinct VAL users, VAL UE IDs (tab-separated; --json: one object per line).`,
  scope: `usage: seal-idms service scope <valServiceId> <scope> [--remove]
  Registers (or with --remove removes) a scope the VAL service's specification defines, e.g. 3gpp:mc:ptt_service: a VAL
  user provisioned for the service who asks for it gets it in the access token's scope; others do not.`,
  scopes: `usage: seal-idms service scopes [valServiceId]
  The registered VAL service scopes (all, or one service's): service ID and scope, tab-separated.`,
};

export async function serviceCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'grant' || sub === 'revoke') {
    const usage = sub === 'grant' ? 'service grant <valServiceId> <valUserId>… [--allow-unknown]' : 'service revoke <valServiceId> <valUserId>…';
    const { values, positionals } = parseCommand(rest, sub === 'grant' ? { 'allow-unknown': { type: 'boolean' } } : {}, usage);
    const valServiceId = validateId('VAL service ID', positionals[0]);
    if (positionals.length < 2) throw new CliError(`usage: ${usage}`);
    const valUserIds = [...new Set(positionals.slice(1).map((u) => validateId('VAL user ID', u)))];
    await withDatabase(io, async ({ database: { db }, out }) => {
      const n =
        sub === 'grant'
          ? await grantService(db, ACTOR, valServiceId, valUserIds, { allowUnknown: (values as { 'allow-unknown'?: boolean })['allow-unknown'] })
          : await revokeService(db, ACTOR, valServiceId, valUserIds);
      out(`${sub === 'grant' ? 'granted' : 'revoked'} ${valServiceId}: ${n} of ${valUserIds.length} VAL users changed`);
    });
    return;
  }
  if (sub === 'list') {
    const usage = 'service list <valServiceId> [--limit N] [--cursor C]';
    const { values, positionals } = parseCommand(rest, { limit: { type: 'string' }, cursor: { type: 'string' } }, usage, { max: 1 });
    const valServiceId = validateId('VAL service ID', positionals[0]);
    const limit = wholeNumber('--limit', values.limit, 1, 10_000);
    await withDatabase(io, async ({ database: { db }, out }) => {
      const page = await serviceUsers(db, valServiceId, { limit, cursor: values.cursor });
      for (const u of page.items) out(u);
      if (page.nextCursor) io.stderr.write(`next page: --cursor ${page.nextCursor}\n`);
    });
    return;
  }
  if (sub === 'list-all') {
    const { values } = parseCommand(rest, { json: { type: 'boolean' } }, 'service list-all [--json]', { max: 0 });
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const s of await listServices(db))
        out(values.json ? JSON.stringify(s) : [s.valServiceId, `${s.valUsers} VAL users`, `${s.valUeIds} VAL UE IDs`].join('\t'));
    });
    return;
  }
  if (sub === 'scope') return serviceScope(rest, io);
  if (sub === 'scopes') {
    const { positionals } = parseCommand(rest, {}, 'service scopes [valServiceId]', { max: 1 });
    const valServiceId = positionals[0] === undefined ? undefined : validateId('VAL service ID', positionals[0]);
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const r of await listServiceScopes(db, valServiceId)) out(`${r.val_service_id}\t${r.scope}`);
    });
    return;
  }
  throw new CliError(`${sub === undefined ? 'missing service subcommand' : `unknown service subcommand "${sub.slice(0, 40)}"`} (see seal-idms service --help)`);
}

/**
 * `service scope <valServiceId> <scope>`: registers the scope a VAL service's specification defines (e.g. MCX's
 * 3gpp:mc:ptt_service). A VAL user provisioned for the service who asks for it gets it in the access token's scope.
 */
async function serviceScope(args: string[], io: CliIo): Promise<void> {
  const usage = 'service scope <valServiceId> <scope> [--remove]';
  const { values, positionals } = parseCommand(args, { remove: { type: 'boolean' } }, usage, { max: 2 });
  if (positionals.length !== 2) throw new CliError(`usage: ${usage}`);
  const valServiceId = validateId('VAL service ID', positionals[0]);
  const scope = positionals[1]!;
  await withDatabase(io, async ({ database: { db }, out }) => {
    if (values.remove) await deregisterServiceScope(db, ACTOR, valServiceId, scope);
    else await registerServiceScope(db, ACTOR, valServiceId, scope);
    out(`${values.remove ? 'removed' : 'registered'} scope ${scope} of VAL service ${valServiceId}`);
  });
}
