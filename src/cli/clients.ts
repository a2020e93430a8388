// CLI: client add | update | list | remove.
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { isAbsoluteUri } from '../config/env.ts';
import { ClientExistsError, clientMetadata, InvalidClientError, listClients, registerClient, registeredScope, removeClient, updateClient, type ClientChange } from '../oidc/clients.ts';
import { atRestKeys } from '../oidc/at-rest.ts';
import { CliError, withDatabase, type CliIo } from './context.ts';
import { cliProvider } from './provider.ts';
import { validateId } from './validate.ts';

const USAGE =
  'usage: client add <clientId> [--secret S] [--public] [--redirect-uri URI]… [--grant TYPE]… [--scope S] [--resource-server URI]… [--name N] · client update <clientId> [--scope S] [--resource-server URI|none]… · client list · client remove <clientId>';

export async function clientCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'add') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        secret: { type: 'string' },
        public: { type: 'boolean' },
        'redirect-uri': { type: 'string', multiple: true },
        grant: { type: 'string', multiple: true },
        scope: { type: 'string' },
        'resource-server': { type: 'string', multiple: true },
        name: { type: 'string' },
      },
    });
    const clientId = validateId('client ID', positionals[0]);
    const metadata = wrap(() =>
      clientMetadata({
        clientId,
        secret: values.secret,
        public: values.public ?? false,
        redirectUris: values['redirect-uri'] ?? [],
        grants: values.grant ?? [],
        scope: values.scope,
        resourceServers: parseResourceServers(values['resource-server']),
        name: values.name,
      }),
    );
    await withDatabase(io, async (ctx) => {
      const provider = await cliProvider(ctx);
      await wrapAsync(() => registerClient(ctx.database.db, provider, metadata, atRestKeys(ctx.secrets)));
      await recordAudit(ctx.database.db, { actor: 'cli', action: 'client.add', subject: clientId, result: 'success', details: { grants: metadata.grant_types } });
      ctx.out(`added client ${clientId} (${metadata.token_endpoint_auth_method === 'none' ? 'public' : 'confidential'}; grants ${metadata.grant_types?.join(', ')}; scope ${registeredScope(metadata)})`);
      // The secret is shown once, when the CLI generated it; an operator-supplied one is not echoed.
      if (metadata.client_secret && !values.secret) ctx.out(`client_secret: ${metadata.client_secret}`);
    });
    return;
  }
  if (sub === 'update') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { scope: { type: 'string' }, 'resource-server': { type: 'string', multiple: true } },
    });
    const clientId = validateId('client ID', positionals[0]);
    const change: ClientChange = {};
    // The registered scope bounds every token of the client (docs/oidc.md): it replaces the old one.
    if (values.scope !== undefined) change.scope = values.scope;
    if (values['resource-server'] !== undefined) change.resourceServers = parseResourceServers(values['resource-server']);
    if (Object.keys(change).length === 0) throw new CliError('nothing to update: give --scope or --resource-server');
    await withDatabase(io, async (ctx) => {
      const provider = await cliProvider(ctx);
      if (!(await wrapAsync(() => updateClient(ctx.database.db, provider, clientId, change, atRestKeys(ctx.secrets))))) throw new CliError(`no client ${clientId}`);
      await recordAudit(ctx.database.db, { actor: 'cli', action: 'client.update', subject: clientId, result: 'success', details: { ...change } });
      ctx.out(`updated client ${clientId}`);
    });
    return;
  }
  if (sub === 'list') {
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const c of await listClients(db)) {
        out([c.client_id, c.token_endpoint_auth_method === 'none' ? 'public' : 'confidential', (c.grant_types ?? []).join(','), registeredScope(c)].join('\t'));
      }
    });
    return;
  }
  if (sub === 'remove') {
    const clientId = validateId('client ID', rest[0]);
    await withDatabase(io, async ({ database: { db }, out }) => {
      if (!(await removeClient(db, clientId))) throw new CliError(`no client ${clientId}`);
      await recordAudit(db, { actor: 'cli', action: 'client.remove', subject: clientId, result: 'success' });
      out(`removed client ${clientId}`);
    });
    return;
  }
  throw new CliError(USAGE);
}

/** --resource-server URI (repeatable): RFC 8707 identifiers; `none` alone clears the list. */
function parseResourceServers(values: string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  if (values.length === 1 && values[0] === 'none') return [];
  for (const v of values) if (!isAbsoluteUri(v)) throw new CliError(`--resource-server must be an absolute URI without a fragment, got "${v.slice(0, 80)}"`);
  return [...new Set(values)];
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InvalidClientError) throw new CliError(`invalid client: ${err.message}`);
    throw err;
  }
}

async function wrapAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InvalidClientError) throw new CliError(`invalid client: ${err.message}`);
    if (err instanceof ClientExistsError) throw new CliError(err.message);
    throw err;
  }
}
