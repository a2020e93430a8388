// CLI: val-server add | list | update | disable | enable | configurations — VAL servers, their OAuth client, their SLA
// and the ss-ipp configuration resources they own.
import { parseArgs } from 'node:util';
import { recordAudit } from '../audit/store.ts';
import { ClientExistsError, clientMetadata, findClient, InvalidClientError, registerClient } from '../oidc/clients.ts';
import { PROVISIONING_SCOPE, SS_IPP_SCOPE, VAL_SERVICE_SCOPE } from '../oidc/resources.ts';
import { configurationsOf } from '../provisioning/configurations.ts';
import {
  insertValServer,
  listValServers,
  updateValServer,
  ValServerExistsError,
  type ValServerChange,
  type ValServerRow,
} from '../provisioning/store.ts';
import { atRestKeys } from '../oidc/at-rest.ts';
import { CliError, withDatabase, type CliIo } from './context.ts';
import { cliProvider } from './provider.ts';
import { validateId } from './validate.ts';

const USAGE = `usage: val-server add <requesterIdentity> --client-id ID [--secret S] --services a,b [--valid-until ISO] [--max-users N] [--endpoint URL]
       val-server list [--json] · val-server disable|enable <requesterIdentity> · val-server configurations <requesterIdentity> [--json]
       val-server update <requesterIdentity> [--services a,b] [--valid-until ISO|none] [--max-users N|none] [--endpoint URL|none]`;

/**
 * What a VAL server's client may ask for: the provisioning APIs (`ss-ipp` is the TS 29.549 API's name, as 3GPP
 * names NF service scopes), and tokens for SEAL servers (DESIGN, actors).
 */
export const VAL_SERVER_SCOPE = `${PROVISIONING_SCOPE} ${VAL_SERVICE_SCOPE} ${SS_IPP_SCOPE}`;

// provisioned_by of the operator's `service grant`: a VAL server with this identity would share its entries.
const RESERVED_IDENTITIES = new Set(['admin']);

export async function valServerCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'add') return add(rest, io);
  if (sub === 'list') {
    const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' } } });
    await withDatabase(io, async ({ database: { db }, out }) => {
      for (const v of await listValServers(db)) out(values.json ? JSON.stringify(describe(v)) : line(v));
    });
    return;
  }
  if (sub === 'update') return update(rest, io);
  if (sub === 'configurations') return configurations(rest, io);
  if (sub === 'disable' || sub === 'enable') {
    const requesterIdentity = validateId('requester identity', rest[0]);
    const status = sub === 'disable' ? 'disabled' : 'active';
    await withDatabase(io, async ({ database: { db }, out }) => {
      if (!(await updateValServer(db, requesterIdentity, { status }))) throw new CliError(`no VAL server ${requesterIdentity}`);
      await recordAudit(db, { actor: 'cli', action: `val-server.${sub}`, subject: requesterIdentity, result: 'success' });
      out(`${sub}d VAL server ${requesterIdentity}`);
    });
    return;
  }
  throw new CliError(USAGE);
}

async function add(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      'client-id': { type: 'string' },
      secret: { type: 'string' },
      services: { type: 'string' },
      'valid-until': { type: 'string' },
      'max-users': { type: 'string' },
      endpoint: { type: 'string' },
    },
  });
  const requesterIdentity = validateId('requester identity', positionals[0]);
  if (RESERVED_IDENTITIES.has(requesterIdentity)) throw new CliError(`requester identity "${requesterIdentity}" is reserved for operator grants`);
  const clientId = validateId('client ID (--client-id)', values['client-id']);
  if (values.services === undefined) throw new CliError('--services is required (comma-separated VAL service IDs)');
  const allowedServiceIds = parseServices(values.services);
  const validUntil = parseValidUntil(values['valid-until']);
  const maxUsersPerService = parseMaxUsers(values['max-users']);
  const endpoint = parseEndpoint(values.endpoint);
  let metadata;
  try {
    metadata = clientMetadata({ clientId, secret: values.secret, public: false, redirectUris: [], grants: ['client_credentials'], scope: VAL_SERVER_SCOPE, name: requesterIdentity });
  } catch (err) {
    if (err instanceof InvalidClientError) throw new CliError(`invalid client: ${err.message}`);
    throw err;
  }

  await withDatabase(io, async (ctx) => {
    const { db } = ctx.database;
    const provider = await cliProvider(ctx);
    if (await findClient(db, clientId)) throw new CliError(`client ${clientId} already exists; a VAL server gets its own client`);
    // The SLA row and the OAuth client exist together or not at all.
    await db.transaction(async (trx) => {
      try {
        await registerClient(trx, provider, metadata, atRestKeys(ctx.secrets));
        await insertValServer(trx, { requesterIdentity, clientId, endpoint, allowedServiceIds, validUntil, maxUsersPerService });
      } catch (err) {
        if (err instanceof ValServerExistsError || err instanceof ClientExistsError) throw new CliError(err.message);
        if (err instanceof InvalidClientError) throw new CliError(`invalid client: ${err.message}`);
        throw err;
      }
      await recordAudit(trx, {
        actor: 'cli',
        action: 'val-server.add',
        subject: requesterIdentity,
        result: 'success',
        details: { clientId, services: allowedServiceIds, validUntil: validUntil?.toISOString() ?? null, maxUsersPerService, endpoint },
      });
    });
    ctx.out(`added VAL server ${requesterIdentity} (client ${clientId}; services ${allowedServiceIds.join(', ')}; valid until ${validUntil?.toISOString() ?? 'no end date'}; max users per service ${maxUsersPerService ?? 'unlimited'})`);
    // The secret is shown once, when the CLI generated it; an operator-supplied one is not echoed.
    if (!values.secret) ctx.out(`client_secret: ${metadata.client_secret}`);
  });
}

async function update(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { services: { type: 'string' }, 'valid-until': { type: 'string' }, 'max-users': { type: 'string' }, endpoint: { type: 'string' } },
  });
  const requesterIdentity = validateId('requester identity', positionals[0]);
  const change: ValServerChange = {};
  if (values.services !== undefined) change.allowedServiceIds = parseServices(values.services);
  if (values['valid-until'] !== undefined) change.validUntil = values['valid-until'] === 'none' ? null : parseValidUntil(values['valid-until']);
  if (values['max-users'] !== undefined) change.maxUsersPerService = values['max-users'] === 'none' ? null : parseMaxUsers(values['max-users']);
  if (values.endpoint !== undefined) change.endpoint = values.endpoint === 'none' ? null : parseEndpoint(values.endpoint);
  if (Object.keys(change).length === 0) throw new CliError('nothing to update: give --services, --valid-until, --max-users or --endpoint');
  await withDatabase(io, async ({ database: { db }, out }) => {
    if (!(await updateValServer(db, requesterIdentity, change))) throw new CliError(`no VAL server ${requesterIdentity}`);
    await recordAudit(db, {
      actor: 'cli',
      action: 'val-server.update',
      subject: requesterIdentity,
      result: 'success',
      details: { ...change, validUntil: change.validUntil === undefined ? undefined : (change.validUntil?.toISOString() ?? null) },
    });
    out(`updated VAL server ${requesterIdentity}`);
  });
}

/** The ss-ipp configuration resources a VAL server owns: confId, created, updated, sizes (its compatibility one marked). */
async function configurations(args: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const requesterIdentity = validateId('requester identity', positionals[0]);
  await withDatabase(io, async ({ database: { db }, out }) => {
    const summaries = await configurationsOf(db, requesterIdentity);
    if (!summaries) throw new CliError(`no VAL server ${requesterIdentity}`);
    for (const c of summaries) {
      const row = { confId: c.conf_id, createdAt: c.created_at.toISOString(), updatedAt: c.updated_at.toISOString(), services: c.services, valUserIds: c.users, valUeIds: c.ues, compatibility: c.compatibility };
      out(values.json ? JSON.stringify(row) : [row.confId, row.createdAt, row.updatedAt, `${row.services} services`, `${row.valUserIds} VAL user IDs`, `${row.valUeIds} VAL UE IDs`, ...(row.compatibility ? ['(compatibility API)'] : [])].join('\t'));
    }
  });
}

function parseServices(value: string): string[] {
  const ids = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) throw new CliError('--services must name at least one VAL service ID');
  return [...new Set(ids.map((s) => validateId('VAL service ID', s)))];
}

function parseValidUntil(value: string | undefined): Date | null {
  if (value === undefined) return null;
  // ISO 8601 date or date-time (RFC 3339 profile); a bare date means its start in UTC.
  const date = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? new Date(value) : new Date(NaN);
  if (Number.isNaN(date.getTime())) throw new CliError(`--valid-until must be an ISO 8601 date or date-time, got "${value}"`);
  return date;
}

function parseMaxUsers(value: string | undefined): number | null {
  if (value === undefined) return null;
  if (!/^\d{1,10}$/.test(value) || Number(value) < 1 || Number(value) > 2_147_483_647) throw new CliError(`--max-users must be a whole number from 1 to 2147483647, got "${value}"`);
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

function describe(v: ValServerRow) {
  return {
    requesterIdentity: v.requester_identity,
    clientId: v.client_id,
    status: v.status,
    services: v.allowed_service_ids,
    validUntil: v.valid_until?.toISOString() ?? null,
    maxUsersPerService: v.max_users_per_service,
    endpoint: v.endpoint,
  };
}

function line(v: ValServerRow): string {
  return [v.requester_identity, v.client_id, v.status, v.allowed_service_ids.join(','), v.valid_until?.toISOString() ?? '-', v.max_users_per_service ?? '-', v.endpoint ?? '-'].join('\t');
}
