// Request id (X-Request-Id in, out and on every log line) and one access-log line per HTTP request.
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';
import pino from 'pino';
import type { Logger } from './logger.ts';

// An id from a proxy or client is reused only if it is short and cannot forge log structure or headers.
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:@\/+=-]{1,128}$/;

const requestIds = new WeakMap<IncomingMessage, string>();
const routes = new WeakMap<IncomingMessage, string>();

export type RequestObserver = (info: { method: string; route: string; status: number; seconds: number }) => void;

/** The request id assigned to this request (for code that only sees the raw request, e.g. oidc-provider events). */
export function requestIdOf(req: IncomingMessage): string | undefined {
  return requestIds.get(req);
}

/** Names the route a request matched, when the handler is not a Koa router (oidc-provider's own routes). */
export function setRouteName(req: IncomingMessage, route: string): void {
  routes.set(req, route);
}

export function acceptRequestId(header: string | undefined): string {
  return header !== undefined && SAFE_REQUEST_ID.test(header) ? header : crypto.randomUUID();
}

/**
 * First middleware of the app. The line is written when the response is finished (or the client went away),
 * so it also covers responses written directly to the socket by oidc-provider. The path is logged without
 * its query string: authorization codes, state and login hints travel in queries (RFC 6749 §4.1.2).
 */
export function requestLog(logger: Logger, observe?: RequestObserver): Koa.Middleware {
  // The access line holds only the fields below, none of them a secret: redaction (wildcard paths walked at
  // every call) would change nothing in it and cost a third of a worker's time at a few thousand requests/s.
  const accessLog = logger.child({}, { redact: [] });
  // A batching destination (serve's, src/cli/serve.ts) holds lines until it has a few KiB: a denied or failed
  // request's line is written out at once, so that no crash can lose it.
  const destination = (logger as Logger & { [pino.symbols.streamSym]?: { flush?: () => void; minLength?: number } })[pino.symbols.streamSym];
  const flush = destination && typeof destination.flush === 'function' && destination.minLength ? () => destination.flush!() : undefined;
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const requestId = acceptRequestId(ctx.get('x-request-id') || undefined);
    requestIds.set(ctx.req, requestId);
    ctx.set('X-Request-Id', requestId);
    ctx.state.requestId = requestId;
    // Built on first use: most requests never log anything but their access line.
    let requestLogger: Logger | undefined;
    Object.defineProperty(ctx.state, 'log', { get: () => (requestLogger ??= logger.child({ requestId })), enumerable: true, configurable: true });
    // Read now: once a slow or aborted client's socket is destroyed, ctx.ip throws inside the 'close' handler below.
    const ip = ctx.ip;

    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = ctx.res.writableFinished ? ctx.res.statusCode : 499; // 499: the client closed first (nginx's code)
      const route = routeLabel(ctx);
      observe?.({ method: ctx.method, route, status, seconds });
      const line = { requestId, method: ctx.method, path: ctx.path, route, status, durationMs: Math.round(seconds * 1e4) / 10, ip };
      if (status >= 500) accessLog.error(line, 'request');
      else accessLog.info(line, 'request');
      if (status >= 400) flush?.();
    };
    ctx.res.once('finish', finish);
    ctx.res.once('close', finish);
    await next();
  };
}

// A bounded label for metrics and logs: the route template, never the raw path (which holds IDs).
function routeLabel(ctx: Koa.Context): string {
  // oidc-provider's route name first: its own router runs in our context too and leaves its path template there.
  const named = routes.get(ctx.req);
  if (named !== undefined) return named;
  const matched = (ctx as Koa.Context & { _matchedRoute?: unknown })._matchedRoute;
  return typeof matched === 'string' ? matched : 'unmatched';
}
