// CLI: resource add | list | remove — the SEAL and VAL servers access tokens may be issued for (RFC 8707).
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { isAbsoluteUri } from '../config/env.ts';
import { SIGNING_ALGS, type SigningAlg } from '../oidc/keys.ts';
import { addResourceServer, listResourceServers, removeResourceServer, VAL_SERVICE_SCOPE } from '../oidc/resources.ts';
import { CliError, withDatabase, type CliIo } from './context.ts';

export async function resourceCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'add') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { scope: { type: 'string' }, alg: { type: 'string' }, ttl: { type: 'string' }, description: { type: 'string' } },
    });
    const identifier = positionals[0];
    if (!identifier || !isAbsoluteUri(identifier)) throw new CliError('resource identifier must be an absolute URI without a fragment');
    const alg = (values.alg ?? 'ES256') as SigningAlg;
    if (!SIGNING_ALGS.includes(alg)) throw new CliError(`--alg must be one of ${SIGNING_ALGS.join(', ')}`);
    const ttl = values.ttl === undefined ? null : Number(values.ttl);
    if (ttl !== null && (!Number.isInteger(ttl) || ttl < 1 || ttl > 86400)) throw new CliError('--ttl must be 1 to 86400 seconds');
    await withDatabase(io, async ({ database: { db }, out }) => {
      await addResourceServer(db, { identifier, scope: values.scope ?? VAL_SERVICE_SCOPE, signing_alg: alg, access_token_ttl: ttl, description: values.description });
      await recordAudit(db, { actor: 'cli', action: 'resource.add', subject: identifier, result: 'success' });
      out(`resource server ${identifier} (scope "${values.scope ?? VAL_SERVICE_SCOPE}", ${alg})`);
    });
    return;
  }
  if (sub === 'list') {
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const r of await listResourceServers(db)) out([r.identifier, r.signing_alg, r.scope, r.access_token_ttl ?? 'default'].join('\t'));
    });
    return;
  }
  if (sub === 'remove') {
    const identifier = rest[0] ?? '';
    await withDatabase(io, async ({ database: { db }, out }) => {
      if (!(await removeResourceServer(db, identifier))) throw new CliError(`no resource server ${identifier}`);
      out(`removed resource server ${identifier}`);
    });
    return;
  }
  throw new CliError('usage: resource add <uri> [--scope S] [--alg ES256|RS256] [--ttl SECONDS] · resource list · resource remove <uri>');
}
