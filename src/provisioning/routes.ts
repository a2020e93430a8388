// HTTP routes of the seed-named SS_IdmsVALServerProvisioning (TS 23.434 draft clause 12.4.3) under
// /ss-idms-provisioning/v1, kept as a compatibility surface over the same service layer and data as ss-ipp
// (ss-ipp-routes.ts, which new integrations use): read and validate input, call one service function, shape the
// response. Errors are thrown and rendered by problem.ts.
import fs from 'node:fs';
import Router from '@koa/router';
import type Koa from 'koa';
import { PROVISIONING_PATH } from '../oidc/resources.ts';
import { bearerAuth } from './auth.ts';
import { auditFailures, readJson, type ApiDeps } from './http.ts';
import { methodNotAllowed, notFound, problemMiddleware } from './problem.ts';
import {
  changeConfigurationSchema,
  parseBody,
  parsePage,
  parseValServiceId,
  provideConfigurationSchema,
} from './schema.ts';
import { AUDIT_ACTIONS, changeConfiguration, deleteConfiguration, listConfiguration, provideConfiguration, type Caller } from './service.ts';

const OPENAPI = fs.readFileSync(new URL('./openapi.yaml', import.meta.url), 'utf8');

/** The provisioning API as one middleware: requests under its base path never reach the OIDC provider. */
export function provisioningApi(deps: ApiDeps): Koa.Middleware {
  const router = new Router({ prefix: PROVISIONING_PATH });
  const authenticate = bearerAuth(deps);
  const audited = (action: string) => auditFailures(deps, action, 'valServiceId');
  const caller = (ctx: Koa.Context) => ctx.state.caller as Caller;

  router.get('/openapi.yaml', (ctx) => {
    ctx.type = 'application/yaml'; // RFC 9512
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = OPENAPI;
  });

  router.post('/configurations', audited(AUDIT_ACTIONS.provide), authenticate, async (ctx) => {
    const request = parseBody(provideConfigurationSchema, await readJson(ctx));
    ctx.state.subject = request.valServiceInfos.map((s) => s.valServiceId).join(',');
    await provideConfiguration(deps.db, caller(ctx), request, new Date());
    respond(ctx, { result: 'SUCCESS' });
  });

  router.get('/configurations/:valServiceId', audited(AUDIT_ACTIONS.list), authenticate, async (ctx) => {
    const valServiceId = parseValServiceId(ctx.params.valServiceId);
    const page = parsePage(ctx.query);
    respond(ctx, { result: 'SUCCESS', ...(await listConfiguration(deps.db, caller(ctx), valServiceId, page, new Date())) });
  });

  router.patch('/configurations/:valServiceId', audited(AUDIT_ACTIONS.change), authenticate, async (ctx) => {
    const valServiceId = parseValServiceId(ctx.params.valServiceId);
    const change = parseBody(changeConfigurationSchema, await readJson(ctx));
    respond(ctx, { result: 'SUCCESS', ...(await changeConfiguration(deps.db, caller(ctx), valServiceId, change, new Date())) });
  });

  router.delete('/configurations/:valServiceId', audited(AUDIT_ACTIONS.delete), authenticate, async (ctx) => {
    const valServiceId = parseValServiceId(ctx.params.valServiceId);
    respond(ctx, { result: 'SUCCESS', ...(await deleteConfiguration(deps.db, caller(ctx), valServiceId, new Date())) });
  });

  const problems = problemMiddleware(deps.log);
  const routes = router.routes();
  const allowed = router.allowedMethods();
  const base = PROVISIONING_PATH + '/';
  return async (ctx, next) => {
    if (ctx.path !== PROVISIONING_PATH && !ctx.path.startsWith(base)) return next();
    await problems(ctx, async () => {
      await routes(ctx as never, () => allowed(ctx as never, async () => {}));
      if (ctx.status === 405 || ctx.status === 501) throw methodNotAllowed(ctx.response.get('Allow').split(/,\s*/).filter(Boolean));
      if (ctx.status === 404 && ctx.body == null) throw notFound(`no resource at ${ctx.path}`);
    });
  };
}

function respond(ctx: Koa.Context, body: object): void {
  // Lists of VAL users are personal data: never kept by shared caches (RFC 9111 §5.2.2.5).
  ctx.set('Cache-Control', 'no-store');
  ctx.status = 200;
  ctx.body = body;
}
