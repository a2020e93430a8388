// Runs a router's middleware only for the paths it owns: @koa/router matches every route's regular expression on
// every request it sees, and the token and introspection endpoints (thousands of requests/s) are none of ours (issue 16).
import type Koa from 'koa';

/**
 * `middleware` for the requests whose path matches `owned`; every other request passes by. `owned` must match every
 * path the router answers as @koa/router matches it (case-insensitive, optional trailing slash).
 */
export function onlyPaths(owned: RegExp, middleware: (ctx: never, next: Koa.Next) => unknown): Koa.Middleware {
  // A router's middleware types its context with the router's additions (params), which it sets itself.
  return async (ctx, next) => {
    if (owned.test(ctx.path)) await middleware(ctx as never, next);
    else await next();
  };
}
