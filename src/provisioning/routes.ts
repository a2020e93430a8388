// HTTP routes of the seed-named SS_IdmsVALServerProvisioning (TS 23.434 draft clause 12.4.3) under
// /ss-idms-provisioning/v1, kept as a compatibility surface over the same service layer and data as ss-ipp
// (ss-ipp-routes.ts, which new integrations use): read and validate input, call one service function, shape the
// response. Errors are thrown and rendered by problem.ts.
import fs from 'node:fs';
import Router from '@koa/router';
import type Koa from 'koa';
import { metrics, type ProvisioningOperation } from '../observability/metrics.ts';
import { PROVISIONING_PATH } from '../oidc/resources.ts';
import { bearerAuth } from './auth.ts';
import type { ApiDeps } from '../http/api.ts';
import { auditFailures, readJson } from './http.ts';
import { methodNotAllowed, notFound, problemMiddleware } from './problem.ts';
import { changeConfigurationSchema, parseBody, parsePage, parseValServiceId, provideConfigurationSchema } from './schema.ts';
import { AUDIT_ACTIONS, changeConfiguration, deleteConfiguration, listConfiguration, provideConfiguration, type Caller } from './service.ts';

const OPENAPI = fs.readFileSync(new URL('./openapi.yaml', import.meta.url), 'utf8');

/** The provisioning API as one middleware: requests under its base path never reach the OIDC provider. */
export function provisioningApi(deps: ApiDeps): Koa.Middleware {
  const router = new Router({ prefix: PROVISIONING_PATH });
  const authenticate = bearerAuth(deps);
  // Every operation counts once in idms_provisioning_operations_total (as on ss-ipp), with the pairs it changed.
  const observed = (action: string, operation: ProvisioningOperation) =>
    auditFailures(deps, action, 'valServiceId', () => metrics.provisioning(operation, 'failure'));
  const caller = (ctx: Koa.Context) => ctx.state.caller as Caller;

  router.get('/openapi.yaml', (ctx) => {
    ctx.type = 'application/yaml'; // RFC 9512
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = OPENAPI;
  });

  router.post('/configurations', observed(AUDIT_ACTIONS.provide, 'provide_configuration'), authenticate, async (ctx) => {
    const request = parseBody(provideConfigurationSchema, await readJson(ctx));
    ctx.state.subject = request.valServiceInfos.map((s) => s.valServiceId).join(',');
    const outcomes = await provideConfiguration(deps.db, caller(ctx), request, new Date());
    metrics.provisioning(
      'provide_configuration',
      'success',
      outcomes.reduce((n, o) => n + o.added + o.removed, 0),
    );
    respond(ctx, { result: 'SUCCESS' });
  });

  router.get('/configurations/:valServiceId', observed(AUDIT_ACTIONS.list, 'get_configuration'), authenticate, async (ctx) => {
    const valServiceId = parseValServiceId(ctx.params.valServiceId);
    const page = parsePage(ctx.query);
    const configuration = await listConfiguration(deps.db, caller(ctx), valServiceId, page, new Date());
    metrics.provisioning('get_configuration', 'success');
    respond(ctx, { result: 'SUCCESS', ...configuration });
  });

  router.patch('/configurations/:valServiceId', observed(AUDIT_ACTIONS.change, 'update_configuration'), authenticate, async (ctx) => {
    const valServiceId = parseValServiceId(ctx.params.valServiceId);
    const change = parseBody(changeConfigurationSchema, await readJson(ctx));
    const outcome = await changeConfiguration(deps.db, caller(ctx), valServiceId, change, new Date());
    metrics.provisioning('update_configuration', 'success', outcome.added + outcome.removed);
    respond(ctx, { result: 'SUCCESS', ...outcome });
  });

  router.delete('/configurations/:valServiceId', observed(AUDIT_ACTIONS.delete, 'delete_configuration'), authenticate, async (ctx) => {
    const valServiceId = parseValServiceId(ctx.params.valServiceId);
    const outcome = await deleteConfiguration(deps.db, caller(ctx), valServiceId, new Date());
    metrics.provisioning('delete_configuration', 'success', outcome.removed);
    respond(ctx, { result: 'SUCCESS', ...outcome });
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
