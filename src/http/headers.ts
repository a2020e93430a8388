// Security headers: those of the HTML pages this server renders (login, logout, errors), and HSTS for the whole origin.
import type { Context, Middleware } from 'koa';

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

/** RFC 6797: browsers that reached the issuer over HTTPS never fall back to plaintext for it (one year). */
export const strictTransportSecurity: Middleware = (ctx, next) => {
  ctx.set('Strict-Transport-Security', 'max-age=31536000');
  return next();
};
