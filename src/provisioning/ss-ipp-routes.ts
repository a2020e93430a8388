// HTTP routes of TS 29.549 SS_IdmParameterProvisioning under {apiRoot}/ss-ipp/v1: read and validate input, call one
// service function (configurations.ts), shape the response. Errors are TS 29.122 ProblemDetails (problem.ts).
import fs from 'node:fs';
import Router from '@koa/router';
import type Koa from 'koa';
import { ssIppResource } from '../oidc/resources.ts';
import { metrics, type ProvisioningOperation } from '../observability/metrics.ts';
import { bearerAuth } from './auth.ts';
import {
  createValServiceConf,
  deleteIndValServicesConf,
  modifyIndValServicesConf,
  retrieveIndValServicesConf,
  retrieveValServiceConfs,
  SS_IPP_AUDIT_ACTIONS,
  updateIndValServicesConf,
} from './configurations.ts';
import type { ApiDeps } from '../http/api.ts';
import { auditFailures, readJson, type BodyRules } from './http.ts';
import { methodNotAllowed, notAcceptable, notFound, problemMiddleware } from './problem.ts';
import { parseBody } from './schema.ts';
import type { Caller } from './service.ts';
import { isConfId, parseRetrieveQuery, valServicesConfigPatchSchema, valServicesConfigSchema } from './ss-ipp-schema.ts';

const OPENAPI = fs.readFileSync(new URL('./ss-ipp.openapi.yaml', import.meta.url), 'utf8');

const JSON_BODY: BodyRules = { mediaType: 'application/json', lengthRequired: true };
// RFC 7396 merge patch; RFC 5789 §2.2: a 415 to PATCH names the patch formats accepted.
const MERGE_PATCH = 'application/merge-patch+json';
const MERGE_PATCH_BODY: BodyRules = { mediaType: MERGE_PATCH, lengthRequired: true, unsupportedHeaders: { 'Accept-Patch': MERGE_PATCH } };

/** The ss-ipp API as one middleware: requests under its base path never reach the OIDC provider. */
export function ssIppApi(deps: ApiDeps): Koa.Middleware {
  const resource = ssIppResource(deps.config);
  // apiRoot may carry a deployment prefix (TS 29.501 clause 4.4.1): the API is served under the same path.
  const basePath = new URL(resource).pathname;
  const router = new Router({ prefix: basePath });
  // TS 29.549 secures ss-ipp with client_credentials and defines no scope: the audience and the VAL server decide.
  const authenticate = bearerAuth(deps, { audience: resource, realm: 'ss-ipp' });
  const caller = (ctx: Koa.Context) => ctx.state.caller as Caller;
  const location = (confId: string) => `${resource}/configurations/${confId}`;
  // Every operation counts once in idms_provisioning_operations_total, with the pairs it changed.
  const observed = (action: string, operation: ProvisioningOperation) =>
    auditFailures(deps, action, 'confId', () => metrics.provisioning(operation, 'failure'));

  router.get('/openapi.yaml', (ctx) => {
    ctx.type = 'application/yaml'; // RFC 9512
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = OPENAPI;
  });

  router.post('/configurations', observed(SS_IPP_AUDIT_ACTIONS.create, 'provide_configuration'), authenticate, async (ctx) => {
    const body = parseBody(valServicesConfigSchema, await readJson(ctx, JSON_BODY));
    ctx.state.subject = body.valSvcConf.map((p) => p.valServiceId).join(',');
    const outcome = await createValServiceConf(deps.db, caller(ctx), body, new Date());
    metrics.provisioning('provide_configuration', 'success', outcome.added);
    ctx.set('Location', location(outcome.confId));
    respond(ctx, 201, outcome.config);
  });

  router.get('/configurations', observed(SS_IPP_AUDIT_ACTIONS.retrieve, 'get_configuration'), authenticate, async (ctx) => {
    acceptJson(ctx);
    const configs = await retrieveValServiceConfs(deps.db, caller(ctx), parseRetrieveQuery(ctx.query));
    metrics.provisioning('get_configuration', 'success');
    respond(ctx, 200, configs);
  });

  router.get('/configurations/:confId', observed(SS_IPP_AUDIT_ACTIONS.retrieve, 'get_configuration'), authenticate, async (ctx) => {
    acceptJson(ctx);
    const config = await retrieveIndValServicesConf(deps.db, caller(ctx), confIdOf(ctx));
    metrics.provisioning('get_configuration', 'success');
    respond(ctx, 200, config);
  });

  router.put('/configurations/:confId', observed(SS_IPP_AUDIT_ACTIONS.update, 'update_configuration'), authenticate, async (ctx) => {
    const body = parseBody(valServicesConfigSchema, await readJson(ctx, JSON_BODY));
    const outcome = await updateIndValServicesConf(deps.db, caller(ctx), confIdOf(ctx), body, new Date());
    metrics.provisioning('update_configuration', 'success', outcome.added + outcome.removed);
    respond(ctx, 200, outcome.config);
  });

  router.patch('/configurations/:confId', observed(SS_IPP_AUDIT_ACTIONS.modify, 'update_configuration'), authenticate, async (ctx) => {
    const patch = parseBody(valServicesConfigPatchSchema, await readJson(ctx, MERGE_PATCH_BODY));
    const outcome = await modifyIndValServicesConf(deps.db, caller(ctx), confIdOf(ctx), { valSvcConf: patch.valSvcConf ?? undefined }, new Date());
    metrics.provisioning('update_configuration', 'success', outcome.added + outcome.removed);
    respond(ctx, 200, outcome.config);
  });

  router.delete('/configurations/:confId', observed(SS_IPP_AUDIT_ACTIONS.delete, 'delete_configuration'), authenticate, async (ctx) => {
    const { removed } = await deleteIndValServicesConf(deps.db, caller(ctx), confIdOf(ctx), new Date());
    metrics.provisioning('delete_configuration', 'success', removed);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 204;
  });

  const problems = problemMiddleware(deps.log, { result: false });
  const routes = router.routes();
  const allowed = router.allowedMethods();
  return async (ctx, next) => {
    if (ctx.path !== basePath && !ctx.path.startsWith(`${basePath}/`)) return next();
    // Everything under the API root answers ProblemDetails, never the provider's text/plain 404.
    await problems(ctx, async () => {
      await routes(ctx as never, () => allowed(ctx as never, async () => {}));
      if (ctx.status === 405 || ctx.status === 501) throw methodNotAllowed(ctx.response.get('Allow').split(/,\s*/).filter(Boolean));
      if (ctx.status === 404 && ctx.body == null) throw notFound(`no resource at ${ctx.path}`);
    });
  };
}

/** A path segment that cannot be a configuration ID names no resource: 404 without a lookup. */
function confIdOf(ctx: Koa.Context): string {
  const confId = (ctx.params as Record<string, string>).confId;
  if (!isConfId(confId)) throw notFound(`no VAL services configuration at ${ctx.path}`);
  return confId;
}

/** RFC 9110 §12.5.1: the representations are application/json only. */
function acceptJson(ctx: Koa.Context): void {
  if (ctx.get('accept') && !ctx.accepts('application/json')) throw notAcceptable('application/json');
}

function respond(ctx: Koa.Context, status: number, body: unknown): void {
  // Lists of VAL users are personal data: never kept by shared caches (RFC 9111 §5.2.2.5).
  ctx.set('Cache-Control', 'no-store');
  ctx.status = status;
  ctx.body = body;
  ctx.type = 'application/json';
}
