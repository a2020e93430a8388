// Liveness, readiness and the theme's stylesheets: the routes that are neither OIDC nor a REST API.
import Router from '@koa/router';
import type { Db } from '../db/knex.ts';
import { readAsset } from '../interactions/views.ts';
import { checkReadiness } from '../observability/health.ts';

export function systemRoutes(db: Db, keysLoaded: () => boolean): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const { ready, checks } = await checkReadiness(db, keysLoaded());
    ctx.status = ready ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: ready ? 'ready' : 'not ready', checks };
  });
  router.get('/static/:file', (ctx) => {
    const css = readAsset(ctx.params.file ?? '');
    if (css === undefined) return;
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.body = css;
  });
  return router;
}
