// The edge check of OAuth/OIDC protocol input: every query and form parameter (and Basic client credentials) is
// refused with 400 invalid_request before oidc-provider sees it if it could not be stored or logged (issue 10, item 4).
import querystring from 'node:querystring';
import type { Context, Middleware } from 'koa';
import { MAX_ID_BYTES, unsafeTextReason } from '../users/ids.ts';
import type { PageSite } from '../interactions/views.ts';
import { renderErrorPage } from './errors.ts';

/** oidc-provider's own limit for form bodies (lib/shared/selective_body.js): we read no more than it would. */
export const MAX_FORM_BYTES = 56 * 1024;
/**
 * Longest value of any other protocol parameter (tokens, assertions, request objects, state). Above the tighter
 * limits of the checks behind it (16 KiB for access tokens and partner assertions), which keep their own error
 * codes (invalid_grant, invalid_token) and audit records.
 */
export const MAX_PARAMETER_BYTES = 32 * 1024;
/** Identifiers matched against registered clients, resource servers and partners. */
const PARAMETER_LIMITS: Readonly<Record<string, number>> = {
  client_id: MAX_ID_BYTES,
  resource: 2048,
  audience: 2048,
};
const MAX_NAME_BYTES = 256;

// Routes whose errors oidc-provider always renders as a page (lib/shared/authorization_error_handler.js): the
// authorization endpoint and its resume. We never redirect to a redirect_uri that nobody has checked yet.
const AUTHORIZATION_PATHS = /^\/auth(\/|$)/;
const USERINFO_PATH = '/me';

class InvalidProtocolInput extends Error {}

/**
 * Koa middleware in front of oidc-provider. A form body it reads is handed on as `req.body`, which oidc-provider
 * parses instead of the (consumed) stream: decoded with the request's charset exactly as it would have done.
 */
export function protocolInputGuard(site: PageSite): Middleware {
  return async (ctx, next) => {
    try {
      checkPath(ctx.path);
      checkParameters(ctx.query);
      checkBasicCredentials(ctx.get('authorization'));
      if (ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
        const body = await readFormText(ctx);
        checkParameters(querystring.parse(body));
        (ctx.req as typeof ctx.req & { body?: string }).body = body;
      }
    } catch (err) {
      if (!(err instanceof InvalidProtocolInput)) throw err;
      refuse(ctx, err.message, site);
      return;
    }
    await next();
  };
}

// Path parameters (the uid of /auth/:uid) are looked up too; oidc-provider's router percent-decodes them.
function checkPath(path: string): void {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return; // not decodable: the router matches no parameterised route with it
  }
  const problem = unsafeTextReason(decoded);
  if (problem) throw new InvalidProtocolInput(`the request path ${problem}`);
}

function checkParameters(params: querystring.ParsedUrlQuery): void {
  for (const [name, raw] of Object.entries(params)) {
    const label = /^[\w.:-]{1,64}$/.test(name) ? `parameter ${name}` : 'a parameter name';
    const nameProblem = unsafeTextReason(name) ?? (Buffer.byteLength(name) > MAX_NAME_BYTES ? `is longer than ${MAX_NAME_BYTES} bytes` : undefined);
    if (nameProblem) throw new InvalidProtocolInput(`a parameter name ${nameProblem}`);
    const limit = PARAMETER_LIMITS[name] ?? MAX_PARAMETER_BYTES;
    for (const value of Array.isArray(raw) ? raw : [raw ?? '']) {
      const problem = unsafeTextReason(value);
      if (problem) throw new InvalidProtocolInput(`${label} ${problem}`);
      if (Buffer.byteLength(value) > limit) throw new InvalidProtocolInput(`${label} is longer than ${limit} bytes`);
    }
  }
}

// RFC 6749 §2.3.1: client_id and secret are form-urlencoded inside the Basic credentials. oidc-provider refuses
// characters outside VSCHAR there itself; checking here keeps one rule and one message for all input.
function checkBasicCredentials(header: string): void {
  const match = /^basic\s+([A-Za-z0-9+/]+={0,2})$/i.exec(header);
  if (!match) return;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return;
  for (const [part, what] of [
    [decoded.slice(0, colon), 'client_id'],
    [decoded.slice(colon + 1), 'client_secret'],
  ] as const) {
    let value: string;
    try {
      value = decodeURIComponent(part.replace(/\+/g, '%20'));
    } catch {
      return; // badly encoded: oidc-provider answers invalid_request for it
    }
    const problem = unsafeTextReason(value);
    if (problem) throw new InvalidProtocolInput(`the ${what} in the Authorization header ${problem}`);
    if (what === 'client_id' && Buffer.byteLength(value) > MAX_ID_BYTES)
      throw new InvalidProtocolInput(`the client_id in the Authorization header is longer than ${MAX_ID_BYTES} bytes`);
  }
}

async function readFormText(ctx: Context): Promise<string> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > MAX_FORM_BYTES) throw new InvalidProtocolInput(`the request body is larger than ${MAX_FORM_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new InvalidProtocolInput(`the request body is larger than ${MAX_FORM_BYTES} bytes`);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks, size);
  if (!ctx.request.charset) return bytes.toString('utf8');
  try {
    return new TextDecoder(ctx.request.charset).decode(bytes);
  } catch {
    throw new InvalidProtocolInput('failed to parse the request body');
  }
}

// The answer oidc-provider would give for its own invalid_request (lib/shared/error_handler.js): a page on the
// authorization endpoint and for browsers, JSON for back-channel clients; RFC 6750 §3.1 challenge at userinfo.
function refuse(ctx: Context, description: string, site: PageSite): void {
  ctx.status = 400;
  ctx.set('Cache-Control', 'no-store');
  if (AUTHORIZATION_PATHS.test(ctx.path) || ctx.accepts('json', 'html') === 'html') {
    renderErrorPage(ctx, site, { error: 'invalid_request', description });
    return;
  }
  if (ctx.path === USERINFO_PATH) ctx.set('WWW-Authenticate', `Bearer error="invalid_request", error_description="${description}"`);
  ctx.type = 'json';
  ctx.body = { error: 'invalid_request', error_description: description };
}
