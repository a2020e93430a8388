// CLI: resource add | list | remove — the SEAL and VAL servers access tokens may be issued for (RFC 8707).
import { isAbsoluteUri } from '../config/env.ts';
import { deregisterResourceServer, registerResourceServer } from '../oidc/admin.ts';
import { SIGNING_ALGS, type SigningAlg } from '../oidc/keys.ts';
import { listResourceServers, VAL_SERVICE_SCOPE } from '../oidc/resources.ts';
import { parseCommand } from './args.ts';
import { CliError, withDatabase, type CliIo, type CommandHelp } from './context.ts';

const ADD_USAGE = 'resource add <uri> [--scope S] [--alg ES256|RS256] [--ttl SECONDS] [--description TEXT]';

export const resourceHelp: CommandHelp = {
  '': `usage: seal-idms resource <subcommand>
  ${ADD_USAGE}   register a resource server (access token audience)
  resource list   ·   resource remove <uri>`,
  add: `usage: seal-idms ${ADD_USAGE}
  Registers a resource server (RFC 8707 identifier, an absolute URI): the scopes its tokens may carry (default
  ${VAL_SERVICE_SCOPE}), their signing algorithm (default ES256) and lifetime (1 to 86400 s; default IDMS_ACCESS_TOKEN_TTL).`,
  list: 'usage: seal-idms resource list\n  One resource server per line: identifier, algorithm, scope, token lifetime.',
  remove: 'usage: seal-idms resource remove <uri>\n  Tokens are no longer issued for it.',
};

export async function resourceCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'add') {
    const { values, positionals } = parseCommand(
      rest,
      { scope: { type: 'string' }, alg: { type: 'string' }, ttl: { type: 'string' }, description: { type: 'string' } },
      ADD_USAGE,
      { max: 1 },
    );
    const identifier = positionals[0];
    if (!identifier || !isAbsoluteUri(identifier)) throw new CliError('resource identifier must be an absolute URI without a fragment');
    const alg = (values.alg ?? 'ES256') as SigningAlg;
    if (!SIGNING_ALGS.includes(alg)) throw new CliError(`--alg must be one of ${SIGNING_ALGS.join(', ')}`);
    const ttl = values.ttl === undefined ? null : Number(values.ttl);
    if (ttl !== null && (!Number.isInteger(ttl) || ttl < 1 || ttl > 86400)) throw new CliError('--ttl must be 1 to 86400 seconds');
    await withDatabase(io, async ({ database: { db }, out }) => {
      await registerResourceServer(db, 'cli', {
        identifier,
        scope: values.scope ?? VAL_SERVICE_SCOPE,
        signing_alg: alg,
        access_token_ttl: ttl,
        description: values.description,
      });
      out(`resource server ${identifier} (scope "${values.scope ?? VAL_SERVICE_SCOPE}", ${alg})`);
    });
    return;
  }
  if (sub === 'list') {
    parseCommand(rest, {}, 'resource list', { max: 0 });
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const r of await listResourceServers(db)) out([r.identifier, r.signing_alg, r.scope, r.access_token_ttl ?? 'default'].join('\t'));
    });
    return;
  }
  if (sub === 'remove') {
    const { positionals } = parseCommand(rest, {}, 'resource remove <uri>', { max: 1 });
    const identifier = positionals[0] ?? '';
    await withDatabase(io, async ({ database: { db }, out }) => {
      await deregisterResourceServer(db, 'cli', identifier);
      out(`removed resource server ${identifier}`);
    });
    return;
  }
  throw new CliError(`usage: ${ADD_USAGE} · resource list · resource remove <uri>`);
}
