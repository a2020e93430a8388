// Request schemas of the provisioning API and their documented limits; zod issues become 3GPP invalidParams.
import { z } from 'zod';
import { badRequest, type InvalidParam } from './problem.ts';
import { canonicalId, MAX_ID_BYTES, unsafeTextReason } from '../users/ids.ts';

/** Longest VAL service ID, VAL user ID or requester identity, in UTF-8 bytes (the one ID rule, src/users/ids.ts). */
export const MAX_ID_LENGTH = MAX_ID_BYTES;
/** Largest request body: 100,000 VAL user IDs of the longest ASCII length fit (100,000 × 258 bytes ≈ 25 MiB). */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;
/**
 * VAL user IDs one request may name in total (Provide_Configuration over all its services, or PATCH add + remove):
 * bounds the transaction that holds the services' locks. Larger populations are grown with PATCH batches.
 */
export const MAX_USER_IDS_PER_REQUEST = 100_000;
export const MAX_SERVICES_PER_REQUEST = 100;
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 10_000;

// The one ID rule (src/users/ids.ts): IDs are stored and compared in their NFC form, so the NFC and NFD spellings of a
// name are one ID; a lone surrogate is refused by name (the driver would store it as U+FFFD, merging distinct IDs).
const id = z.string({ error: 'must be a string' }).transform((value, ctx) => {
  const check = canonicalId(value);
  if (check.ok) return check.id;
  ctx.addIssue({ code: 'custom', message: unsafeTextReason(value) ?? check.reason });
  return z.NEVER;
});

const userIdList = z.array(id, { error: 'must be an array of VAL user IDs' }).max(MAX_USER_IDS_PER_REQUEST, `at most ${MAX_USER_IDS_PER_REQUEST} VAL user IDs`);

function flagDuplicates(ids: readonly string[], path: (string | number)[], ctx: z.RefinementCtx, what: string): void {
  const first = new Map<string, number>();
  ids.forEach((value, i) => {
    const seen = first.get(value);
    if (seen === undefined) first.set(value, i);
    else ctx.addIssue({ code: 'custom', path: [...path, i], message: `duplicate ${what} (same as index ${seen})` });
  });
}

/** Provide_Configuration request (TS 23.434 table 12.3.2.1-1): requester identity + {VAL service ID, VAL user IDs}. */
export const provideConfigurationSchema = z
  .strictObject(
    {
      requesterIdentity: id,
      valServiceInfos: z
        .array(z.strictObject({ valServiceId: id, valUserIds: userIdList }, { error: 'must be an object' }), { error: 'must be an array' })
        .min(1, 'must name at least one VAL service')
        .max(MAX_SERVICES_PER_REQUEST, `at most ${MAX_SERVICES_PER_REQUEST} VAL services`),
    },
    { error: 'must be a JSON object' },
  )
  .superRefine((body, ctx) => {
    flagDuplicates(
      body.valServiceInfos.map((s) => s.valServiceId),
      ['valServiceInfos'],
      ctx,
      'VAL service ID',
    );
    body.valServiceInfos.forEach((s, i) => flagDuplicates(s.valUserIds, ['valServiceInfos', i, 'valUserIds'], ctx, 'VAL user ID'));
    const total = body.valServiceInfos.reduce((n, s) => n + s.valUserIds.length, 0);
    if (total > MAX_USER_IDS_PER_REQUEST)
      ctx.addIssue({ code: 'custom', path: ['valServiceInfos'], message: `at most ${MAX_USER_IDS_PER_REQUEST} VAL user IDs in one request, got ${total}` });
  });

export type ProvideConfigurationRequest = z.infer<typeof provideConfigurationSchema>;

/** PATCH body: VAL user IDs to add to and remove from the caller's entries of one VAL service. */
export const changeConfigurationSchema = z
  .strictObject({ add: userIdList.optional(), remove: userIdList.optional() }, { error: 'must be a JSON object' })
  .superRefine((body, ctx) => {
    const add = body.add ?? [];
    const remove = body.remove ?? [];
    if (add.length + remove.length === 0) ctx.addIssue({ code: 'custom', path: [], message: 'add or remove must name at least one VAL user ID' });
    if (add.length + remove.length > MAX_USER_IDS_PER_REQUEST)
      ctx.addIssue({ code: 'custom', path: [], message: `at most ${MAX_USER_IDS_PER_REQUEST} VAL user IDs in one request` });
    flagDuplicates(add, ['add'], ctx, 'VAL user ID');
    flagDuplicates(remove, ['remove'], ctx, 'VAL user ID');
    const adding = new Set(add);
    remove.forEach((u, i) => {
      if (adding.has(u)) ctx.addIssue({ code: 'custom', path: ['remove', i], message: 'the same VAL user ID cannot be both added and removed' });
    });
  })
  .transform((body) => ({ add: body.add ?? [], remove: body.remove ?? [] }));

export type ChangeConfigurationRequest = z.infer<typeof changeConfigurationSchema>;

export const valServiceIdSchema = id;

/** The paging cursor is the last VAL user ID of the previous page, base64url-encoded so it stays opaque. */
export function encodeCursor(lastValUserId: string): string {
  return Buffer.from(lastValUserId, 'utf8').toString('base64url');
}

const pageSchema = z.strictObject({
  limit: z
    .string()
    .regex(/^[1-9]\d{0,5}$/, `must be a whole number from 1 to ${MAX_PAGE_SIZE}`)
    .transform(Number)
    .refine((n) => n <= MAX_PAGE_SIZE, `must be a whole number from 1 to ${MAX_PAGE_SIZE}`)
    .optional(),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,1020}$/, 'not a cursor returned by this API')
    .transform((c, ctx) => {
      const decoded = Buffer.from(c, 'base64url').toString('utf8');
      if (encodeCursor(decoded) !== c || !id.safeParse(decoded).success) {
        ctx.addIssue({ code: 'custom', message: 'not a cursor returned by this API' });
        return z.NEVER;
      }
      return decoded;
    })
    .optional(),
});

export type Page = { limit: number; after?: string };

/** Validates a parsed JSON body; every failure is a 400 whose invalidParams point into the body. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  throw badRequest('MANDATORY_IE_INCORRECT', 'the request body does not match the API schema', issuesToParams(parsed.error.issues, ''));
}

export function parseValServiceId(value: string | undefined): string {
  const parsed = id.safeParse(value);
  if (parsed.success) return parsed.data;
  throw badRequest('RESOURCE_URI_STRUCTURE_NOT_FOUND', 'invalid VAL service ID in the path', [
    { param: 'valServiceId', reason: parsed.error.issues[0]!.message },
  ]);
}

export function parsePage(query: Record<string, string | string[] | undefined>): Page {
  // A repeated parameter is ambiguous: refuse it rather than pick one.
  const repeated = Object.entries(query).filter(([, value]) => Array.isArray(value));
  if (repeated.length)
    throw badRequest(
      'INVALID_QUERY_PARAM',
      'invalid query parameter',
      repeated.map(([name]) => ({ param: name, reason: 'must be given once' })),
    );
  const parsed = pageSchema.safeParse(query);
  if (!parsed.success) {
    const params = parsed.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys' ? i.keys.map((k) => ({ param: k, reason: 'unknown query parameter' })) : [{ param: String(i.path[0]), reason: i.message }],
    );
    throw badRequest('INVALID_QUERY_PARAM', 'invalid query parameter', params);
  }
  return { limit: parsed.data.limit ?? DEFAULT_PAGE_SIZE, ...(parsed.data.cursor !== undefined ? { after: parsed.data.cursor } : {}) };
}

/** Zod issues as TS 29.571 InvalidParams, `param` being a JSON Pointer (RFC 6901) below `base`. */
export function issuesToParams(issues: readonly z.core.$ZodIssue[], base: string): InvalidParam[] {
  const params: InvalidParam[] = [];
  for (const issue of issues) {
    const at = base + issue.path.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) params.push({ param: `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, reason: 'unknown attribute' });
    } else {
      params.push({ param: at, reason: issue.message });
    }
  }
  return params;
}
