// CLI: client add | update | show | list | rotate-secret | remove — parse, call src/oidc/clients.ts, print.
import { isAbsoluteUri } from '../config/env.ts';
import { atRestKeys } from '../oidc/at-rest.ts';
import {
  addClient,
  changeClient,
  deleteClient,
  InvalidClientError,
  listClientDescriptions,
  registeredScope,
  rotateClientSecret,
  showClient,
  type ClientChange,
  type ClientDescription,
} from '../oidc/clients.ts';
import { parseCommand } from './args.ts';
import { CliError, withDatabase, type CliIo, type CommandHelp } from './context.ts';
import { cliProvider } from './provider.ts';
import { validateId } from './validate.ts';

const ACTOR = 'cli';

const ADD_USAGE =
  'client add <clientId> [--secret S] [--public] [--redirect-uri URI]… [--post-logout-redirect-uri URI]… [--grant TYPE]… [--scope S] [--resource-server URI]… [--name N] [--id-token-alg RS256|ES256|PS256|EdDSA]';
const UPDATE_USAGE =
  'client update <clientId> [--redirect-uri URI]… [--post-logout-redirect-uri URI|none]… [--grant TYPE]… [--name N] [--scope S] [--resource-server URI|none]… [--id-token-alg RS256|ES256|PS256|EdDSA]';

export const clientHelp: CommandHelp = {
  '': `usage: seal-idms client <subcommand>
  add <clientId> …                 register a client (see client add --help)
  update <clientId> …              change redirect URIs (also after logout), grants, name, scope, resource servers, ID token algorithm
  show <clientId> [--json]         the registered metadata (never the secret)
  list [--json]                    all clients
  rotate-secret <clientId>         a new generated secret, printed once; the old one stops working
  remove <clientId>                the client's tokens stop at once`,
  add: `usage: seal-idms ${ADD_USAGE}
  --public: PKCE client without secret. Without --grant: authorization_code refresh_token if redirect URIs are given,
  else client_credentials. Without --secret a confidential client gets a generated secret, printed once. --scope: the
  client's registered scope (tokens never carry anything else). --resource-server: a resource server this client
  operates (it may introspect tokens issued for it). --id-token-alg: its ID tokens' algorithm (default RS256).
  --post-logout-redirect-uri (repeatable): where the client may send the person after RP-initiated logout
  (post_logout_redirect_uri, exact match; without one the signed-out page offers IDMS_HOME_URL).`,
  update: `usage: seal-idms ${UPDATE_USAGE}
  Each option given replaces that part of the registration: --redirect-uri (repeatable) the redirect URIs,
  --post-logout-redirect-uri (repeatable) the URIs after logout (none clears them), --grant (repeatable) the grant
  types, --name the display name ('' removes it), --scope the registered scope, --resource-server the resource
  servers it operates (none clears them), --id-token-alg its ID token algorithm.
  Takes effect at the client's next request.`,
  show: `usage: seal-idms client show <clientId> [--json]
  The client's registered metadata: type, authentication method, grants, redirect URIs (also after logout), scope,
  resource servers, ID token algorithm. Secrets are stored hashed and never shown.`,
  list: `usage: seal-idms client list [--json]
  One client per line: ID, public|confidential, grants, registered scope (tab-separated; --json: one object per line).`,
  'rotate-secret': `usage: seal-idms client rotate-secret <clientId>
  Generates a new secret for a confidential client and prints it once (it is stored hashed). The old secret stops
  working at the client's next request.`,
  remove: `usage: seal-idms client remove <clientId>
  Removes the client: its tokens stop at once (client authentication fails; its access tokens are inactive at
  introspection and refused by the provisioning API).`,
};

export async function clientCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add':
      return add(rest, io);
    case 'update':
      return update(rest, io);
    case 'show': {
      const { values, positionals } = parseCommand(rest, { json: { type: 'boolean' } }, 'client show <clientId> [--json]', { max: 1 });
      const clientId = validateId('client ID', positionals[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        const c = await showClient(db, clientId);
        if (values.json) return out(JSON.stringify(c));
        out(`client ID: ${c.clientId}`);
        if (c.name) out(`name: ${c.name}`);
        out(`type: ${c.type} (${c.authMethod})`);
        out(`grants: ${c.grants.join(' ')}`);
        out(`redirect URIs: ${c.redirectUris.join(' ') || '-'}`);
        out(`post-logout redirect URIs: ${c.postLogoutRedirectUris.join(' ') || '-'}`);
        out(`scope: ${c.scope || '-'}`);
        out(`resource servers: ${c.resourceServers.join(' ') || '-'}`);
        out(`ID token algorithm: ${c.idTokenAlg}`);
      });
      return;
    }
    case 'list': {
      const { values } = parseCommand(rest, { json: { type: 'boolean' } }, 'client list [--json]', { max: 0 });
      await withDatabase(io, async ({ database: { db }, out }) => {
        for (const c of await listClientDescriptions(db)) out(values.json ? JSON.stringify(c) : line(c));
      });
      return;
    }
    case 'rotate-secret': {
      const { positionals } = parseCommand(rest, {}, 'client rotate-secret <clientId>', { max: 1 });
      const clientId = validateId('client ID', positionals[0]);
      await withDatabase(io, async (ctx) => {
        const secret = await asCliError(() => rotateClientSecret(ctx.database.db, atRestKeys(ctx.secrets), ACTOR, clientId));
        ctx.out(`rotated the secret of client ${clientId}; the old one no longer works`);
        // Shown this once: only its hash is stored.
        ctx.out(`client_secret: ${secret}`);
      });
      return;
    }
    case 'remove': {
      const { positionals } = parseCommand(rest, {}, 'client remove <clientId>', { max: 1 });
      const clientId = validateId('client ID', positionals[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        await deleteClient(db, ACTOR, clientId);
        out(`removed client ${clientId}`);
      });
      return;
    }
    default:
      throw new CliError(
        `${sub === undefined ? 'missing client subcommand' : `unknown client subcommand "${sub.slice(0, 40)}"`} (see seal-idms client --help)`,
      );
  }
}

async function add(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommand(
    args,
    {
      secret: { type: 'string' },
      public: { type: 'boolean' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      grant: { type: 'string', multiple: true },
      scope: { type: 'string' },
      'resource-server': { type: 'string', multiple: true },
      name: { type: 'string' },
      'id-token-alg': { type: 'string' },
    },
    ADD_USAGE,
    { max: 1 },
  );
  const clientId = validateId('client ID', positionals[0]);
  const spec = {
    clientId,
    secret: values.secret,
    public: values.public ?? false,
    redirectUris: values['redirect-uri'] ?? [],
    postLogoutRedirectUris: [...new Set(values['post-logout-redirect-uri'] ?? [])],
    grants: values.grant ?? [],
    scope: values.scope,
    resourceServers: parseResourceServers(values['resource-server']),
    name: values.name,
    idTokenAlg: values['id-token-alg'],
  };
  await withDatabase(io, async (ctx) => {
    const provider = await cliProvider(ctx);
    const { metadata, generatedSecret } = await asCliError(() => addClient(ctx.database.db, provider, atRestKeys(ctx.secrets), ACTOR, spec));
    ctx.out(
      `added client ${clientId} (${metadata.token_endpoint_auth_method === 'none' ? 'public' : 'confidential'}; grants ${metadata.grant_types?.join(', ')}; scope ${registeredScope(metadata)})`,
    );
    // The secret is shown once, when the CLI generated it; an operator-supplied one is not echoed.
    if (generatedSecret) ctx.out(`client_secret: ${generatedSecret}`);
  });
}

async function update(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommand(
    args,
    {
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      grant: { type: 'string', multiple: true },
      name: { type: 'string' },
      scope: { type: 'string' },
      'resource-server': { type: 'string', multiple: true },
      'id-token-alg': { type: 'string' },
    },
    UPDATE_USAGE,
    { max: 1 },
  );
  const clientId = validateId('client ID', positionals[0]);
  const change: ClientChange = {};
  if (values['redirect-uri'] !== undefined) change.redirectUris = [...new Set(values['redirect-uri'])];
  // OIDC RP-Initiated Logout 1.0 §3.1: checked by oidc-provider like redirect URIs (absolute, no fragment, web URIs).
  const afterLogout = values['post-logout-redirect-uri'];
  if (afterLogout !== undefined) change.postLogoutRedirectUris = afterLogout.length === 1 && afterLogout[0] === 'none' ? [] : [...new Set(afterLogout)];
  if (values.grant !== undefined) change.grants = [...new Set(values.grant)];
  if (values.name !== undefined) change.name = values.name;
  // The registered scope bounds every token of the client (docs/oidc.md): it replaces the old one.
  if (values.scope !== undefined) change.scope = values.scope;
  if (values['resource-server'] !== undefined) change.resourceServers = parseResourceServers(values['resource-server']);
  // OIDC Core §3.1.3.7: the algorithm the client's ID tokens are signed with (RS256 when never set).
  if (values['id-token-alg'] !== undefined) change.idTokenAlg = values['id-token-alg'];
  if (Object.keys(change).length === 0)
    throw new CliError('nothing to update: give --redirect-uri, --post-logout-redirect-uri, --grant, --name, --scope, --resource-server or --id-token-alg');
  await withDatabase(io, async (ctx) => {
    const provider = await cliProvider(ctx);
    await asCliError(() => changeClient(ctx.database.db, provider, atRestKeys(ctx.secrets), ACTOR, clientId, change));
    ctx.out(`updated client ${clientId}`);
  });
}

function line(c: ClientDescription): string {
  return [c.clientId, c.type, c.grants.join(','), c.scope].join('\t');
}

/** --resource-server URI (repeatable): RFC 8707 identifiers; `none` alone clears the list. */
function parseResourceServers(values: string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  if (values.length === 1 && values[0] === 'none') return [];
  for (const v of values) if (!isAbsoluteUri(v)) throw new CliError(`--resource-server must be an absolute URI without a fragment, got "${v.slice(0, 80)}"`);
  return [...new Set(values)];
}

async function asCliError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InvalidClientError) throw new CliError(`invalid client: ${err.message}`);
    throw err;
  }
}
