// VAL server use cases of the operator (`val-server add|update|disable|enable|show|list|configurations`): a VAL
// server is its SLA row plus its own OAuth client, created together; every write is audited.
import type { ClientMetadata } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { recordAudit } from '../audit/store.ts';
import { NO_CACHE } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import type { AtRestKeys } from '../oidc/at-rest.ts';
import { clientMetadata, findClient, registerClient } from '../oidc/clients.ts';
import { PROVISIONING_SCOPE, SS_IPP_SCOPE, VAL_SERVICE_SCOPE } from '../oidc/resources.ts';
import { configurationsOf } from './configurations.ts';
import { OPERATOR } from './operator.ts';
import { findValServer, insertValServer, listValServers as listRows, updateValServer, type ValServerChange, type ValServerRow } from './store.ts';

/**
 * What a VAL server's client may ask for: the provisioning APIs (`ss-ipp` is the TS 29.549 API's name, as 3GPP
 * names NF service scopes), and tokens for SEAL servers (DESIGN, actors).
 */
export const VAL_SERVER_SCOPE = `${PROVISIONING_SCOPE} ${VAL_SERVICE_SCOPE} ${SS_IPP_SCOPE}`;

/** Requester identities no VAL server may take: provisioned_by of the operator's grants would be shared with it. */
export const RESERVED_IDENTITIES: ReadonlySet<string> = new Set([OPERATOR]);

export class InvalidValServerError extends Error {}
export class NoSuchValServerError extends Error {
  constructor(requesterIdentity: string) {
    super(`no VAL server ${requesterIdentity}`);
  }
}

export type ValServerInput = {
  requesterIdentity: string;
  clientId: string;
  /** Operator-chosen secret; without one a secret is generated and returned once. */
  secret?: string;
  allowedServiceIds: string[];
  validUntil: Date | null;
  maxUsersPerService: number | null;
  endpoint: string | null;
  /** TS 33.434 A.2.2.3: its SKM-C may provide key material to the S-KMS; its access tokens carry SKeyProv. */
  skeyProv?: boolean;
};

/** Refuses an identity reserved for the operator's own entries. */
export function checkRequesterIdentity(requesterIdentity: string): void {
  if (RESERVED_IDENTITIES.has(requesterIdentity)) throw new InvalidValServerError(`requester identity "${requesterIdentity}" is reserved for operator grants`);
}

/**
 * Registers a VAL server: its confidential client_credentials client and its SLA row exist together or not at all,
 * with the audit event in the same transaction. Returns the generated secret, if one was generated.
 */
export async function addValServer(db: Db, provider: Provider, keys: AtRestKeys, actor: string, input: ValServerInput): Promise<{ generatedSecret?: string }> {
  checkRequesterIdentity(input.requesterIdentity);
  const metadata: ClientMetadata = clientMetadata({
    clientId: input.clientId,
    secret: input.secret,
    public: false,
    redirectUris: [],
    grants: ['client_credentials'],
    scope: VAL_SERVER_SCOPE,
    name: input.requesterIdentity,
  });
  if (await findClient(db, NO_CACHE, input.clientId))
    throw new InvalidValServerError(`client ${input.clientId} already exists; a VAL server gets its own client`);
  const skeyProv = input.skeyProv ?? false;
  await db.transaction(async (trx) => {
    await registerClient(trx, provider, metadata, keys);
    await insertValServer(trx, {
      requesterIdentity: input.requesterIdentity,
      clientId: input.clientId,
      endpoint: input.endpoint,
      allowedServiceIds: input.allowedServiceIds,
      validUntil: input.validUntil,
      maxUsersPerService: input.maxUsersPerService,
      skeyProv,
    });
    await recordAudit(trx, {
      actor,
      action: 'val-server.add',
      subject: input.requesterIdentity,
      result: 'success',
      details: {
        clientId: input.clientId,
        services: input.allowedServiceIds,
        validUntil: input.validUntil?.toISOString() ?? null,
        maxUsersPerService: input.maxUsersPerService,
        endpoint: input.endpoint,
        skeyProv,
      },
    });
  });
  return input.secret ? {} : { generatedSecret: metadata.client_secret as string };
}

/** Applies an SLA change (services, validity, quota, endpoint, SKeyProv). */
export async function changeValServer(db: Db, actor: string, requesterIdentity: string, change: ValServerChange): Promise<void> {
  if (!(await updateValServer(db, requesterIdentity, change))) throw new NoSuchValServerError(requesterIdentity);
  const { status, ...rest } = change;
  await recordAudit(db, {
    actor,
    action: status === undefined ? 'val-server.update' : status === 'disabled' ? 'val-server.disable' : 'val-server.enable',
    subject: requesterIdentity,
    result: 'success',
    ...(status === undefined ? { details: { ...rest, validUntil: rest.validUntil === undefined ? undefined : (rest.validUntil?.toISOString() ?? null) } } : {}),
  });
}

/**
 * A disabled VAL server gets no tokens, introspects nothing, and its tokens are refused by the provisioning API and
 * inactive at introspection, from the next request on every instance.
 */
export async function setValServerStatus(db: Db, actor: string, requesterIdentity: string, status: 'active' | 'disabled'): Promise<void> {
  await changeValServer(db, actor, requesterIdentity, { status });
}

export type ValServerDescription = {
  requesterIdentity: string;
  clientId: string;
  status: 'active' | 'disabled';
  services: string[];
  validUntil: string | null;
  maxUsersPerService: number | null;
  endpoint: string | null;
  skeyProv: boolean;
};

export function describeValServer(v: ValServerRow): ValServerDescription {
  return {
    requesterIdentity: v.requester_identity,
    clientId: v.client_id,
    status: v.status,
    services: v.allowed_service_ids,
    validUntil: v.valid_until?.toISOString() ?? null,
    maxUsersPerService: v.max_users_per_service,
    endpoint: v.endpoint,
    skeyProv: v.skey_prov,
  };
}

export async function listValServers(db: Db): Promise<ValServerDescription[]> {
  return (await listRows(db)).map(describeValServer);
}

export async function showValServer(db: Db, requesterIdentity: string): Promise<ValServerDescription> {
  const row = await findValServer(db, requesterIdentity);
  if (!row) throw new NoSuchValServerError(requesterIdentity);
  return describeValServer(row);
}

export type ConfigurationDescription = {
  confId: string;
  createdAt: string;
  updatedAt: string;
  services: number;
  valUserIds: number;
  valUeIds: number;
  compatibility: boolean;
};

/** The ss-ipp configuration resources a VAL server owns, oldest first, with their sizes. */
export async function valServerConfigurations(db: Db, requesterIdentity: string): Promise<ConfigurationDescription[]> {
  const summaries = await configurationsOf(db, requesterIdentity);
  if (!summaries) throw new NoSuchValServerError(requesterIdentity);
  return summaries.map((c) => ({
    confId: c.conf_id,
    createdAt: c.created_at.toISOString(),
    updatedAt: c.updated_at.toISOString(),
    services: c.services,
    valUserIds: c.users,
    valUeIds: c.ues,
    compatibility: c.compatibility,
  }));
}
