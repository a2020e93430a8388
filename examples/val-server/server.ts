// Example VAL server (Koa): registration binds a signalling identity (IMPU) to the VAL user and VAL service named by an S-IdMS access token.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import { AccessTokenError, bearerToken, createAccessTokenVerifier, IssuerUnavailableError, type VerifiedUserAccessToken } from '@seal-idms/verify';

export type ValServerOptions = {
  /** The S-IdMS issuer identifier. */
  issuer: string;
  /** This VAL server's resource identifier, registered at the S-IdMS with `resource add`. */
  audience: string;
  /** The VAL service this server provides; only users provisioned for it may register. */
  valServiceId: string;
  /** Override of the S-IdMS JWKS location (default: from its discovery document). */
  jwksUri?: string;
};

export type Binding = { impu: string; valUserId: string; valServiceId: string; clientId: string; registeredAt: string };

const REALM = 'val-server';
const BODY_LIMIT = 4096;
// TS 23.003 §13.4: an IMPU is a SIP URI or a tel URI (global number).
const IMPU = /^(sips?:[^\s@<>"]+@[^\s@<>"]+|tel:\+[0-9][0-9().-]*)$/;

type State = { user: VerifiedUserAccessToken };

export function createValServer(options: ValServerOptions): { app: Koa; bindings: ReadonlyMap<string, Binding> } {
  const verify = createAccessTokenVerifier({
    issuer: options.issuer,
    audience: options.audience,
    requiredValServiceId: options.valServiceId,
    ...(options.jwksUri ? { jwksUri: options.jwksUri } : {}),
  });
  // In memory for the example; a real VAL server keeps bindings with its registration state.
  const bindings = new Map<string, Binding>();

  const app = new Koa<State>();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof AccessTokenError) {
        // RFC 6750 §3: the refusal says why in WWW-Authenticate.
        ctx.set('WWW-Authenticate', err.wwwAuthenticate(REALM));
        problem(ctx, err.status, err.status === 403 ? 'Forbidden' : err.status === 400 ? 'Bad Request' : 'Unauthorized', err.message);
      } else if (err instanceof IssuerUnavailableError) {
        ctx.set('Retry-After', '5');
        problem(ctx, 503, 'Service Unavailable', 'the S-IdMS cannot be reached to validate the token');
      } else if (err instanceof HttpProblem) {
        problem(ctx, err.status, err.title, err.message);
      } else {
        throw err;
      }
    }
  });

  const authenticated: Koa.Middleware<State> = async (ctx, next) => {
    ctx.state.user = await verify(bearerToken(ctx.get('authorization') || undefined));
    await next();
  };

  const router = new Router<State>();

  // Registration: the VAL UE presents the access token it got from the S-IdMS and the IMPU it signals with.
  router.post('/register', authenticated, async (ctx) => {
    const impu = parseImpu(await readJson(ctx.req, ctx.get('content-type')));
    const { valUserId, clientId } = ctx.state.user;
    const existing = bindings.get(impu);
    if (existing && existing.valUserId !== valUserId) {
      throw new HttpProblem(409, 'Conflict', 'the IMPU is bound to another VAL user');
    }
    const binding: Binding = { impu, valUserId, valServiceId: options.valServiceId, clientId, registeredAt: new Date().toISOString() };
    bindings.set(impu, binding);
    ctx.status = existing ? 200 : 201;
    ctx.body = binding;
  });

  router.get('/register', authenticated, (ctx) => {
    const { valUserId } = ctx.state.user;
    ctx.body = { bindings: [...bindings.values()].filter((b) => b.valUserId === valUserId) };
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return { app, bindings };
}

class HttpProblem extends Error {
  readonly status: number;
  readonly title: string;
  constructor(status: number, title: string, detail: string) {
    super(detail);
    this.status = status;
    this.title = title;
  }
}

// RFC 9457 problem details.
function problem(ctx: Koa.Context, status: number, title: string, detail: string): void {
  ctx.status = status;
  ctx.type = 'application/problem+json';
  ctx.body = { status, title, detail };
}

function parseImpu(body: unknown): string {
  const impu = (body as { impu?: unknown } | null)?.impu;
  if (typeof impu !== 'string' || impu.length > 255 || !IMPU.test(impu)) {
    throw new HttpProblem(400, 'Bad Request', 'impu must be a SIP URI (sip:user@domain) or a global tel URI');
  }
  return impu;
}

async function readJson(req: http.IncomingMessage, contentType: string): Promise<unknown> {
  if (!/^application\/json\b/i.test(contentType)) throw new HttpProblem(415, 'Unsupported Media Type', 'send application/json');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw new HttpProblem(413, 'Content Too Large', `the body exceeds ${BODY_LIMIT} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpProblem(400, 'Bad Request', 'the body is not valid JSON');
  }
}

if (import.meta.main) {
  const env = process.env;
  const missing = ['IDMS_ISSUER', 'VAL_AUDIENCE', 'VAL_SERVICE_ID'].filter((name) => !env[name]);
  if (missing.length) {
    process.stderr.write(`val-server: set ${missing.join(', ')} (see examples/val-server/README.md)\n`);
    process.exit(2);
  }
  const { app } = createValServer({ issuer: env.IDMS_ISSUER!, audience: env.VAL_AUDIENCE!, valServiceId: env.VAL_SERVICE_ID!, jwksUri: env.IDMS_JWKS_URI });
  const server = http.createServer(app.callback());
  server.listen(Number(env.PORT ?? 4000), env.HOST ?? '127.0.0.1', () => {
    const { address, port } = server.address() as AddressInfo;
    process.stdout.write(`val-server for ${env.VAL_SERVICE_ID} listening on http://${address}:${port}\n`);
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => server.close());
}
