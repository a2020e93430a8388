// Security headers for the HTML pages this server renders (login, logout, errors).
import type { Context } from 'koa';

export function setPageSecurityHeaders(ctx: Context, formTargets: string[] = []): void {
  // form-action must also allow where the post-login redirects lead (Chromium applies it to redirects).
  const formAction = ["'self'", ...formTargets].join(' ');
  ctx.set(
    'Content-Security-Policy',
    `default-src 'none'; style-src 'self'; img-src 'self'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
  );
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Cache-Control', 'no-store');
}
