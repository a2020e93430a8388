// CLI: client add | list | remove.
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { ClientExistsError, clientMetadata, InvalidClientError, listClients, registerClient, removeClient } from '../oidc/clients.ts';
import { atRestKeys } from '../oidc/at-rest.ts';
import { CliError, withDatabase, type CliIo } from './context.ts';
import { cliProvider } from './provider.ts';
import { validateId } from './validate.ts';

const USAGE = 'usage: client add <clientId> [--secret S] [--public] [--redirect-uri URI]… [--grant TYPE]… [--scope S] [--name N] · client list · client remove <clientId>';

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
        name: values.name,
      }),
    );
    await withDatabase(io, async (ctx) => {
      const provider = await cliProvider(ctx);
      await wrapAsync(() => registerClient(ctx.database.db, provider, metadata, atRestKeys(ctx.secrets)));
      await recordAudit(ctx.database.db, { actor: 'cli', action: 'client.add', subject: clientId, result: 'success', details: { grants: metadata.grant_types } });
      ctx.out(`added client ${clientId} (${metadata.token_endpoint_auth_method === 'none' ? 'public' : 'confidential'}; grants ${metadata.grant_types?.join(', ')}; scope ${metadata.scope})`);
      // The secret is shown once, when the CLI generated it; an operator-supplied one is not echoed.
      if (metadata.client_secret && !values.secret) ctx.out(`client_secret: ${metadata.client_secret}`);
    });
    return;
  }
  if (sub === 'list') {
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const c of await listClients(db)) {
        out([c.client_id, c.token_endpoint_auth_method === 'none' ? 'public' : 'confidential', (c.grant_types ?? []).join(','), c.scope ?? ''].join('\t'));
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
