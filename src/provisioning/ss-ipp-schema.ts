// Request schemas of TS 29.549 SS_IdmParameterProvisioning (ss-ipp) and their limits; zod issues become invalidParams.
import crypto from 'node:crypto';
import { z } from 'zod';
import { badRequest } from './problem.ts';
import { MAX_SERVICES_PER_REQUEST, MAX_USER_IDS_PER_REQUEST, valServiceIdSchema as id } from './schema.ts';

/** idList entries (VAL user IDs and VAL UE IDs) one request may name in all: bounds the transaction holding the service locks. */
export const MAX_TARGETS_PER_REQUEST = MAX_USER_IDS_PER_REQUEST;
export { MAX_SERVICES_PER_REQUEST };

/** Features of ss-ipp this server supports (TS 29.500 clause 6.6): none defined in TS 29.549 V18.4.0. */
export const SUPPORTED_FEATURES = '0';

/** TS 29.571 SupportedFeatures: a hex bitmask, features 1–4 in the last character. */
const suppFeat = z
  .string({ error: 'must be a string' })
  .max(256, 'must be at most 256 hexadecimal digits')
  .regex(/^[A-Fa-f0-9]*$/, 'must be hexadecimal digits (TS 29.571 SupportedFeatures)');

/** TS 29.549 ValTargetUe: exactly one of valUserId and valUeId. */
const valTargetUe = z
  .strictObject({ valUserId: id.optional(), valUeId: id.optional() }, { error: 'must be an object with valUserId or valUeId' })
  .superRefine((t, ctx) => {
    if ((t.valUserId === undefined) === (t.valUeId === undefined)) ctx.addIssue({ code: 'custom', message: 'must have exactly one of valUserId and valUeId' });
  });

const valServiceParams = z
  .strictObject(
    {
      valServiceId: id,
      idList: z
        .array(valTargetUe, { error: 'must be an array of ValTargetUe' })
        .min(1, 'must name at least one VAL user ID or VAL UE ID')
        .max(MAX_TARGETS_PER_REQUEST, `at most ${MAX_TARGETS_PER_REQUEST} entries`),
    },
    { error: 'must be an object' },
  )
  .superRefine((params, ctx) => {
    // The same target twice in one list is a client error, not something to merge silently.
    const first = new Map<string, number>();
    params.idList.forEach((t, i) => {
      const key = t.valUserId !== undefined ? `u ${t.valUserId}` : `e ${t.valUeId}`;
      const seen = first.get(key);
      if (seen === undefined) first.set(key, i);
      else ctx.addIssue({ code: 'custom', path: ['idList', i], message: `duplicate entry (same as index ${seen})` });
    });
  });

const valSvcConf = z
  .array(valServiceParams, { error: 'must be an array of VALServiceParams' })
  .min(1, 'must name at least one VAL service')
  .max(MAX_SERVICES_PER_REQUEST, `at most ${MAX_SERVICES_PER_REQUEST} VAL services`)
  .superRefine((list, ctx) => {
    const first = new Map<string, number>();
    list.forEach((p, i) => {
      const seen = first.get(p.valServiceId);
      if (seen === undefined) first.set(p.valServiceId, i);
      else ctx.addIssue({ code: 'custom', path: [i, 'valServiceId'], message: `duplicate VAL service ID (same as index ${seen})` });
    });
    const total = list.reduce((n, p) => n + p.idList.length, 0);
    if (total > MAX_TARGETS_PER_REQUEST)
      ctx.addIssue({ code: 'custom', path: [], message: `at most ${MAX_TARGETS_PER_REQUEST} idList entries in one request, got ${total}` });
  });

/** TS 29.549 VALServicesConfig (POST and PUT bodies). */
export const valServicesConfigSchema = z.strictObject({ valServerId: id, valSvcConf, suppFeat: suppFeat.optional() }, { error: 'must be a JSON object' });

export type ValServicesConfigRequest = z.infer<typeof valServicesConfigSchema>;

/**
 * TS 29.549 VALServicesConfigPatch as an RFC 7396 merge patch: `valSvcConf`, if present, replaces the array as a
 * whole; null would remove a mandatory attribute, so it is refused.
 */
export const valServicesConfigPatchSchema = z.strictObject(
  {
    valSvcConf: z
      .union([valSvcConf, z.null()])
      .optional()
      .refine((v) => v !== null, 'valSvcConf is mandatory and cannot be removed'),
  },
  { error: 'must be a JSON object' },
);

export type ValServicesConfigPatch = { valSvcConf?: z.infer<typeof valSvcConf> };

/** The answer to a client's suppFeat (TS 29.500 clause 6.6.2): the features both support; none today. */
export function negotiateFeatures(_requested: string | undefined): string {
  return SUPPORTED_FEATURES;
}

// Configuration IDs are 22 base64url characters (128 random bits); anything else cannot name a resource.
const CONF_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isConfId(value: string | undefined): value is string {
  return value !== undefined && CONF_ID.test(value);
}

export type RetrieveQuery = { valServerId?: string; confIds?: string[] };

/**
 * Query of RetrieveValServiceConf: `val-server-id` and `config-ids` (an array: repeated, as OpenAPI's default
 * form/explode encodes it, or comma-separated). Unknown or repeated scalar parameters are refused.
 */
export function parseRetrieveQuery(query: Record<string, string | string[] | undefined>): RetrieveQuery {
  const bad = Object.keys(query)
    .filter((k) => k !== 'val-server-id' && k !== 'config-ids')
    .map((k) => ({ param: k, reason: 'unknown query parameter' }));
  const server = query['val-server-id'];
  if (Array.isArray(server)) bad.push({ param: 'val-server-id', reason: 'must be given once' });
  const result: RetrieveQuery = {};
  if (typeof server === 'string') {
    const parsed = id.safeParse(server);
    if (parsed.success) result.valServerId = parsed.data;
    else bad.push({ param: 'val-server-id', reason: parsed.error.issues[0]!.message });
  }
  const ids = query['config-ids'];
  if (ids !== undefined) {
    const list = (Array.isArray(ids) ? ids : [ids]).flatMap((v) => v.split(','));
    if (list.length === 0 || list.length > 1000 || list.some((v) => v === ''))
      bad.push({ param: 'config-ids', reason: 'must list 1 to 1000 configuration IDs' });
    else result.confIds = [...new Set(list)];
  }
  if (bad.length) throw badRequest('INVALID_QUERY_PARAM', 'invalid query parameter', bad);
  return result;
}

/** A new configuration ID: 128 random bits, base64url (unguessable, so knowing one URL reveals no other). */
export function newConfId(): string {
  return crypto.randomBytes(16).toString('base64url');
}
