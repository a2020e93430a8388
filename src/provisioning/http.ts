// HTTP helpers shared by both provisioning APIs' routes: reading a JSON body within the limits, and auditing failures.
import type Koa from 'koa';
import { recordAudit } from '../audit/store.ts';
import type { ApiDeps } from '../http/api.ts';
import { readBody } from '../http/body.ts';
import { badRequest, lengthRequired, toProblem, unsupportedMediaType, type ProblemError } from './problem.ts';
import { MAX_BODY_BYTES } from './schema.ts';

export type BodyRules = {
  /** The media type the body must have (e.g. application/merge-patch+json for an RFC 7396 PATCH). */
  mediaType: string;
  /** Headers of the 415 answer (RFC 5789 §2.2: Accept-Patch). */
  unsupportedHeaders?: Record<string, string>;
  /** Answer 411 to a request that declares neither Content-Length nor Transfer-Encoding (ss-ipp lists 411). */
  lengthRequired?: boolean;
};

/** Reads and parses the JSON body (at most MAX_BODY_BYTES); a missing, empty, mistyped or malformed body is a problem. */
export async function readJson(ctx: Koa.Context, rules: BodyRules = { mediaType: 'application/json' }): Promise<unknown> {
  if (rules.lengthRequired && ctx.get('content-length') === '' && ctx.get('transfer-encoding') === '') throw lengthRequired();
  const type = ctx.is(rules.mediaType);
  if (type === null || ctx.request.length === 0)
    throw badRequest('INVALID_MSG_FORMAT', 'a JSON request body is required', [{ param: '', reason: 'missing body' }]);
  if (type === false) throw unsupportedMediaType(rules.mediaType, rules.unsupportedHeaders);
  const text = await readBody(ctx, MAX_BODY_BYTES);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest('INVALID_MSG_FORMAT', 'the request body is not valid JSON', [
      { param: '', reason: err instanceof Error ? err.message.slice(0, 200) : 'invalid JSON' },
    ]);
  }
}

/**
 * Audits a failed operation (success is audited by the service inside its transaction) and passes the problem on.
 * Recorded after the rollback, so the event survives it. `onFailure` sees the problem too (metrics).
 */
export function auditFailures(deps: ApiDeps, action: string, subjectParam: string, onFailure?: (problem: ProblemError) => void): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const problem = toProblem(err, ctx, deps.log);
      onFailure?.(problem);
      const subject = (ctx.state.subject as string | undefined) ?? (ctx.params as Record<string, string> | undefined)?.[subjectParam];
      await recordAudit(deps.db, {
        actor: (ctx.state.actor as string | undefined) ?? 'anonymous',
        action,
        subject: subject?.slice(0, 1024),
        result: 'failure',
        details: { status: problem.status, cause: problem.problemCause, ...(problem.detail ? { detail: problem.detail } : {}) },
      }).catch((e: unknown) => deps.log(`audit of a failed ${action} could not be written: ${String(e)}`));
      throw problem;
    }
  };
}
