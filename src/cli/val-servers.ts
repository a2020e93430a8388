// CLI: val-server add | list | show | update | disable | enable | configurations — VAL servers, their OAuth client,
// their SLA and the ss-ipp configuration resources they own; parse, call src/provisioning/val-servers.ts, print.
import { atRestKeys } from '../oidc/at-rest.ts';
import { InvalidClientError } from '../oidc/clients.ts';
import type { ValServerChange } from '../provisioning/store.ts';
import {
  addValServer,
  changeValServer,
  checkRequesterIdentity,
  listValServers,
  setValServerStatus,
  showValServer,
  valServerConfigurations,
  type ValServerDescription,
} from '../provisioning/val-servers.ts';
import { parseCommand } from './args.ts';
import { CliError, withDatabase, type CliIo, type CommandHelp } from './context.ts';
import { cliProvider } from './provider.ts';
import { validateId } from './validate.ts';

const ACTOR = 'cli';

const ADD_USAGE =
  'val-server add <requesterIdentity> --client-id ID [--secret S] --services a,b [--valid-until ISO] [--max-users N] [--endpoint URL] [--skey-prov]';
const UPDATE_USAGE =
  'val-server update <requesterIdentity> [--services a,b] [--valid-until ISO|none] [--max-users N|none] [--endpoint URL|none] [--skey-prov|--no-skey-prov]';

export const valServerHelp: CommandHelp = {
  '': `usage: seal-idms val-server <subcommand>
  add <requesterIdentity> --client-id ID --services a,b …   register a VAL server with its SLA and OAuth client
  update <requesterIdentity> …                              change its SLA (see val-server update --help)
  disable|enable <requesterIdentity>                        a disabled VAL server gets no tokens
  show <requesterIdentity> [--json]                         its client, status, SLA
  list [--json]                                             all VAL servers
  configurations <requesterIdentity> [--json]               the ss-ipp configuration resources it owns`,
  add: `usage: seal-idms ${ADD_USAGE}
  Registers a VAL server: its SLA (allowed VAL service IDs, valid until, max users per service, endpoint) and its own
  confidential client_credentials client, created together. Without --secret a secret is generated and printed once.
  --skey-prov: its SKM-C may provide key material to the S-KMS (SKeyProv: true in its access tokens, TS 33.434 A.2.2.3).`,
  update: `usage: seal-idms ${UPDATE_USAGE}
  Changes the SLA; "none" removes a validity end, quota or endpoint. Takes effect at the next request on every instance.`,
  disable: `usage: seal-idms val-server disable <requesterIdentity>
  A disabled VAL server (or one past --valid-until) gets no tokens (unauthorized_client), introspects nothing, and its
  existing tokens are refused by the provisioning API and inactive at introspection.`,
  enable: `usage: seal-idms val-server enable <requesterIdentity>`,
  show: `usage: seal-idms val-server show <requesterIdentity> [--json]
  The VAL server's client ID, status, allowed VAL services, validity, quota, endpoint and SKeyProv flag.`,
  list: `usage: seal-idms val-server list [--json]
  One VAL server per line: identity, client ID, status, services, valid until, max users, endpoint (tab-separated;
  --json: one object per line).`,
  configurations: `usage: seal-idms val-server configurations <requesterIdentity> [--json]
  The ss-ipp configuration resources the VAL server owns, oldest first: confId, created, updated, number of VAL
  services, VAL user IDs and VAL UE IDs; the one the compatibility API writes into is marked.`,
};

export async function valServerCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add':
      return add(rest, io);
    case 'update':
      return update(rest, io);
    case 'list': {
      const { values } = parseCommand(rest, { json: { type: 'boolean' } }, 'val-server list [--json]', { max: 0 });
      await withDatabase(io, async ({ database: { db }, out }) => {
        for (const v of await listValServers(db)) out(values.json ? JSON.stringify(v) : line(v));
      });
      return;
    }
    case 'show': {
      const { values, positionals } = parseCommand(rest, { json: { type: 'boolean' } }, 'val-server show <requesterIdentity> [--json]', { max: 1 });
      const requesterIdentity = validateId('requester identity', positionals[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        const v = await showValServer(db, requesterIdentity);
        if (values.json) return out(JSON.stringify(v));
        out(`requester identity: ${v.requesterIdentity}`);
        out(`client ID: ${v.clientId}`);
        out(`status: ${v.status}`);
        out(`VAL services: ${v.services.join(', ')}`);
        out(`valid until: ${v.validUntil ?? 'no end date'}`);
        out(`max users per service: ${v.maxUsersPerService ?? 'unlimited'}`);
        out(`endpoint: ${v.endpoint ?? '-'}`);
        out(`SKeyProv: ${v.skeyProv}`);
      });
      return;
    }
    case 'configurations':
      return configurations(rest, io);
    case 'disable':
    case 'enable': {
      const { positionals } = parseCommand(rest, {}, `val-server ${sub} <requesterIdentity>`, { max: 1 });
      const requesterIdentity = validateId('requester identity', positionals[0]);
      await withDatabase(io, async ({ database: { db }, out }) => {
        await setValServerStatus(db, ACTOR, requesterIdentity, sub === 'disable' ? 'disabled' : 'active');
        out(`${sub}d VAL server ${requesterIdentity}`);
      });
      return;
    }
    default:
      throw new CliError(
        `${sub === undefined ? 'missing val-server subcommand' : `unknown val-server subcommand "${sub.slice(0, 40)}"`} (see seal-idms val-server --help)`,
      );
  }
}

async function add(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommand(
    args,
    {
      'client-id': { type: 'string' },
      secret: { type: 'string' },
      services: { type: 'string' },
      'valid-until': { type: 'string' },
      'max-users': { type: 'string' },
      endpoint: { type: 'string' },
      // TS 33.434 A.2.2.3: its SKM-C may provide key material to the S-KMS; its access tokens carry SKeyProv.
      'skey-prov': { type: 'boolean' },
    },
    ADD_USAGE,
    { max: 1 },
  );
  const requesterIdentity = validateId('requester identity', positionals[0]);
  checkRequesterIdentity(requesterIdentity);
  const clientId = validateId('client ID (--client-id)', values['client-id']);
  if (values.services === undefined) throw new CliError('--services is required (comma-separated VAL service IDs)');
  const input = {
    requesterIdentity,
    clientId,
    secret: values.secret,
    allowedServiceIds: parseServices(values.services),
    validUntil: parseValidUntil(values['valid-until']),
    maxUsersPerService: parseMaxUsers(values['max-users']),
    endpoint: parseEndpoint(values.endpoint),
    skeyProv: values['skey-prov'] ?? false,
  };
  await withDatabase(io, async (ctx) => {
    const provider = await cliProvider(ctx);
    let added;
    try {
      added = await addValServer(ctx.database.db, provider, atRestKeys(ctx.secrets), ACTOR, input);
    } catch (err) {
      if (err instanceof InvalidClientError) throw new CliError(`invalid client: ${err.message}`);
      throw err;
    }
    ctx.out(
      `added VAL server ${requesterIdentity} (client ${clientId}; services ${input.allowedServiceIds.join(', ')}; valid until ${input.validUntil?.toISOString() ?? 'no end date'}; max users per service ${input.maxUsersPerService ?? 'unlimited'})`,
    );
    // The secret is shown once, when the CLI generated it; an operator-supplied one is not echoed.
    if (added.generatedSecret) ctx.out(`client_secret: ${added.generatedSecret}`);
  });
}

async function update(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommand(
    args,
    {
      services: { type: 'string' },
      'valid-until': { type: 'string' },
      'max-users': { type: 'string' },
      endpoint: { type: 'string' },
      'skey-prov': { type: 'boolean' },
      'no-skey-prov': { type: 'boolean' },
    },
    UPDATE_USAGE,
    { max: 1 },
  );
  const requesterIdentity = validateId('requester identity', positionals[0]);
  const change: ValServerChange = {};
  if (values.services !== undefined) change.allowedServiceIds = parseServices(values.services);
  if (values['valid-until'] !== undefined) change.validUntil = values['valid-until'] === 'none' ? null : parseValidUntil(values['valid-until']);
  if (values['max-users'] !== undefined) change.maxUsersPerService = values['max-users'] === 'none' ? null : parseMaxUsers(values['max-users']);
  if (values.endpoint !== undefined) change.endpoint = values.endpoint === 'none' ? null : parseEndpoint(values.endpoint);
  if (values['skey-prov'] && values['no-skey-prov']) throw new CliError('give --skey-prov or --no-skey-prov, not both');
  if (values['skey-prov'] || values['no-skey-prov']) change.skeyProv = values['skey-prov'] === true;
  if (Object.keys(change).length === 0) throw new CliError('nothing to update: give --services, --valid-until, --max-users, --endpoint or --skey-prov');
  await withDatabase(io, async ({ database: { db }, out }) => {
    await changeValServer(db, ACTOR, requesterIdentity, change);
    out(`updated VAL server ${requesterIdentity}`);
  });
}

/** The ss-ipp configuration resources a VAL server owns: confId, created, updated, sizes (its compatibility one marked). */
async function configurations(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommand(args, { json: { type: 'boolean' } }, 'val-server configurations <requesterIdentity> [--json]', { max: 1 });
  const requesterIdentity = validateId('requester identity', positionals[0]);
  await withDatabase(io, async ({ database: { db }, out }) => {
    for (const row of await valServerConfigurations(db, requesterIdentity)) {
      out(
        values.json
          ? JSON.stringify(row)
          : [
              row.confId,
              row.createdAt,
              row.updatedAt,
              `${row.services} services`,
              `${row.valUserIds} VAL user IDs`,
              `${row.valUeIds} VAL UE IDs`,
              ...(row.compatibility ? ['(compatibility API)'] : []),
            ].join('\t'),
      );
    }
  });
}

function parseServices(value: string): string[] {
  const ids = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length === 0) throw new CliError('--services must name at least one VAL service ID');
  return [...new Set(ids.map((s) => validateId('VAL service ID', s)))];
}

function parseValidUntil(value: string | undefined): Date | null {
  if (value === undefined) return null;
  // ISO 8601 date or date-time (RFC 3339 profile); a bare date means its start in UTC.
  const date = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? new Date(value) : new Date(NaN);
  if (Number.isNaN(date.getTime())) throw new CliError(`--valid-until must be an ISO 8601 date or date-time, got "${value.slice(0, 40)}"`);
  return date;
}

function parseMaxUsers(value: string | undefined): number | null {
  if (value === undefined) return null;
  if (!/^\d{1,10}$/.test(value) || Number(value) < 1 || Number(value) > 2_147_483_647)
    throw new CliError(`--max-users must be a whole number from 1 to 2147483647, got "${value.slice(0, 40)}"`);
  return Number(value);
}

function parseEndpoint(value: string | undefined): string | null {
  if (value === undefined) return null;
  try {
    const url = new URL(value);
    if ((url.protocol === 'https:' || url.protocol === 'http:') && !url.hash && value.length <= 2048) return value;
  } catch {
    // reported below
  }
  throw new CliError(`--endpoint must be an http(s) URL without a fragment, got "${value.slice(0, 80)}"`);
}

function line(v: ValServerDescription): string {
  return [v.requesterIdentity, v.clientId, v.status, v.services.join(','), v.validUntil ?? '-', v.maxUsersPerService ?? '-', v.endpoint ?? '-'].join('\t');
}
