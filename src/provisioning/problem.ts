// The provisioning API's errors: one ProblemError family, rendered in one place as RFC 9457
// application/problem+json with the 3GPP ProblemDetails fields (TS 29.571 clause 5.2.4.1) and "result": "FAILURE".
import type Koa from 'koa';
import { isDatabaseUnavailable } from '../db/availability.ts';
import { BodyTooLargeError } from '../http/body.ts';
import { logWithReference, OUTAGE_DESCRIPTION, outageHeaders } from '../http/errors.ts';

/** TS 29.571 InvalidParam: `param` is a JSON Pointer into the body (RFC 6901), or a query parameter or header name. */
export type InvalidParam = { param: string; reason?: string };

export type ProblemInit = {
  status: number;
  title: string;
  /** Application error cause (TS 29.500 clause 5.2.7.2 names where one fits). */
  cause: string;
  detail?: string;
  invalidParams?: InvalidParam[];
  headers?: Record<string, string>;
};

export class ProblemError extends Error {
  readonly status: number;
  readonly title: string;
  readonly problemCause: string;
  readonly detail?: string;
  readonly invalidParams?: InvalidParam[];
  readonly headers: Record<string, string>;

  constructor(init: ProblemInit) {
    super(init.detail ?? init.title);
    this.status = init.status;
    this.title = init.title;
    this.problemCause = init.cause;
    this.detail = init.detail;
    this.invalidParams = init.invalidParams;
    this.headers = init.headers ?? {};
  }
}

// A response carrying thousands of bad IDs would be a denial of service of its own: report the first ones.
const MAX_INVALID_PARAMS = 20;

export function badRequest(cause: string, detail: string, invalidParams: InvalidParam[]): ProblemError {
  return new ProblemError({ status: 400, title: 'Bad Request', cause, detail, invalidParams: invalidParams.slice(0, MAX_INVALID_PARAMS) });
}

export function forbidden(cause: string, detail: string, extra: { headers?: Record<string, string>; invalidParams?: InvalidParam[] } = {}): ProblemError {
  return new ProblemError({
    status: 403,
    title: 'Forbidden',
    cause,
    detail,
    headers: extra.headers,
    invalidParams: extra.invalidParams?.slice(0, MAX_INVALID_PARAMS),
  });
}

export function unauthorized(cause: string, detail: string, wwwAuthenticate: string): ProblemError {
  return new ProblemError({ status: 401, title: 'Unauthorized', cause, detail, headers: { 'WWW-Authenticate': wwwAuthenticate } });
}

export function payloadTooLarge(limit: number): ProblemError {
  return new ProblemError({
    status: 413,
    title: 'Payload Too Large',
    cause: 'PAYLOAD_TOO_LARGE',
    detail: `the request body exceeds ${limit} bytes`,
    invalidParams: [{ param: '', reason: `at most ${limit} bytes` }],
  });
}

export function unsupportedMediaType(expected: string, headers?: Record<string, string>): ProblemError {
  return new ProblemError({
    status: 415,
    title: 'Unsupported Media Type',
    cause: 'UNSUPPORTED_MEDIA_TYPE',
    detail: `the request body must be ${expected}`,
    invalidParams: [{ param: 'Content-Type', reason: `must be ${expected}` }],
    headers,
  });
}

/** RFC 9110 §15.5.12: a body-bearing request that declares neither Content-Length nor Transfer-Encoding. */
export function lengthRequired(): ProblemError {
  return new ProblemError({
    status: 411,
    title: 'Length Required',
    cause: 'LENGTH_REQUIRED',
    detail: 'the request needs a body with a Content-Length',
    invalidParams: [{ param: 'Content-Length', reason: 'missing' }],
  });
}

/** RFC 9110 §15.5.7: the Accept header rules out every representation the resource has. */
export function notAcceptable(available: string): ProblemError {
  return new ProblemError({
    status: 406,
    title: 'Not Acceptable',
    cause: 'NOT_ACCEPTABLE',
    detail: `the resource is available as ${available} only`,
    invalidParams: [{ param: 'Accept', reason: `must accept ${available}` }],
  });
}

export function notFound(detail: string): ProblemError {
  return new ProblemError({ status: 404, title: 'Not Found', cause: 'RESOURCE_URI_STRUCTURE_NOT_FOUND', detail });
}

export function methodNotAllowed(allowed: string[]): ProblemError {
  return new ProblemError({
    status: 405,
    title: 'Method Not Allowed',
    cause: 'METHOD_NOT_ALLOWED',
    detail: `allowed: ${allowed.join(', ')}`,
    headers: { Allow: allowed.join(', ') },
  });
}

export type ProblemBody = {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance: string;
  cause: string;
  invalidParams?: InvalidParam[];
  /** Only on the seed-named API (TS 23.434 table 12.3.2.2-1); TS 29.122 ProblemDetails (ss-ipp) has no such field. */
  result?: 'FAILURE';
};

/**
 * Maps anything thrown below it to a problem+json response; unexpected errors become a 500 with a log reference.
 * `result`: add the seed-named API's `"result": "FAILURE"` (default); ss-ipp answers plain TS 29.122 ProblemDetails.
 */
export function problemMiddleware(log: (line: string) => void, options: { result: boolean } = { result: true }): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const problem = toProblem(err, ctx, log);
      ctx.status = problem.status;
      for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
      ctx.set('Cache-Control', 'no-store');
      const body: ProblemBody = {
        type: 'about:blank',
        title: problem.title,
        status: problem.status,
        ...(problem.detail ? { detail: problem.detail } : {}),
        instance: ctx.path,
        cause: problem.problemCause,
        ...(problem.invalidParams ? { invalidParams: problem.invalidParams } : {}),
        // TS 23.434 table 12.3.2.2-1: the response carries the result of the operation.
        ...(options.result ? { result: 'FAILURE' as const } : {}),
      };
      ctx.body = body;
      ctx.type = 'application/problem+json';
    }
  };
}

/** The ProblemError an error turns into (logging unexpected ones once); callers that audit a failure rethrow the result. */
export function toProblem(err: unknown, ctx: Koa.Context, log: (line: string) => void): ProblemError {
  if (err instanceof ProblemError) return err;
  if (err instanceof BodyTooLargeError) return payloadTooLarge(err.limit);
  // PostgreSQL unreachable: the write did not happen (transactions), so the VAL server can simply retry.
  // (A client that aborted its upload can also surface ECONNRESET: that one is the 400 below.)
  if (isDatabaseUnavailable(err) && !ctx.req.readableAborted) {
    return new ProblemError({
      status: 503,
      title: 'Service Unavailable',
      cause: 'TEMPORARILY_UNAVAILABLE',
      detail: OUTAGE_DESCRIPTION,
      headers: outageHeaders(),
    });
  }
  // A client that goes away mid-body: nothing to answer, but no 500 either.
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ECONNRESET' || (err as { code?: string } | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return badRequest('INVALID_MSG_FORMAT', 'the request body was cut short', [{ param: '', reason: 'incomplete body' }]);
  }
  const ref = logWithReference(ctx, err, log);
  return new ProblemError({ status: 500, title: 'Internal Server Error', cause: 'SYSTEM_FAILURE', detail: `reference ${ref}` });
}
