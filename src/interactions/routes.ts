// The login interaction: the HTML form (VAL user ID + password) that oidc-provider sends users to.
import crypto from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import { recordAudit } from '../audit/store.ts';
import { metrics, type LoginResult } from '../observability/metrics.ts';
import type { Db } from '../db/knex.ts';
import { readForm } from '../http/body.ts';
import { setPageSecurityHeaders } from '../http/headers.ts';
import { servicesOfUser } from '../provisioning/store.ts';
import { authenticate } from '../users/authenticate.ts';
import type { ThrottlePolicy } from '../users/throttle.ts';
import { renderFragment, renderPage } from './views.ts';

export type InteractionDeps = {
  db: Db;
  csrfKey: Buffer;
  provider: () => Provider;
  throttle?: ThrottlePolicy;
};

const GENERIC_FAILURE = 'The VAL user ID or password is incorrect.';
const MAX_USER_ID = 255;
const FORM_LIMIT = 8 * 1024;

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

export function interactionRoutes(deps: InteractionDeps): Router {
  const router = new Router();

  router.get('/interaction/:uid', async (ctx) => {
    const details = await loadDetails(ctx, deps);
    if (!details) return;
    if (details.prompt.name === 'login') {
      await showLogin(ctx, deps, details, { status: 200 });
      return;
    }
    // Registered clients have implicit consent (see docs/oidc.md): confirm whatever the provider still asks.
    await deps.provider().interactionFinished(ctx.req, ctx.res, { consent: {} }, { mergeWithLastSubmission: true });
    ctx.respond = false;
  });

  router.post('/interaction/:uid/login', async (ctx) => {
    const details = await loadDetails(ctx, deps);
    if (!details) return;
    const form = await readForm(ctx, FORM_LIMIT);
    if (!csrfMatches(deps.csrfKey, details.uid, form.get('csrf') ?? '')) {
      await showLogin(ctx, deps, details, { status: 403, message: 'Your sign-in form expired. Please try again.' });
      return;
    }
    if (details.prompt.name !== 'login') {
      await showLogin(ctx, deps, details, { status: 400, message: 'This sign-in request is no longer valid. Please try again.' });
      return;
    }
    const valUserId = form.get('val_user_id') ?? '';
    const password = form.get('password') ?? '';
    // Control characters (NUL included) never occur in a VAL user ID and cannot be stored as throttle keys either.
    if (!valUserId || !password || valUserId.length > MAX_USER_ID || /[\u0000-\u001f\u007f]/.test(valUserId)) {
      await showLogin(ctx, deps, details, { status: 400, message: GENERIC_FAILURE, invalid: true, valUserId: valUserId.slice(0, MAX_USER_ID) });
      return;
    }

    const result = await authenticate(deps.db, { valUserId, password, ip: ctx.ip }, deps.throttle);
    const audit = (outcome: 'success' | 'failure', reason?: LoginResult) => {
      metrics.login(reason ?? 'success');
      return recordAudit(deps.db, { actor: valUserId, action: 'login', subject: String(details.params.client_id), result: outcome, details: reason ? { reason } : {} });
    };

    if (!result.ok) {
      await audit('failure', result.reason);
      if (result.reason === 'throttled') {
        ctx.set('Retry-After', String(result.retryAfter));
        await showLogin(ctx, deps, details, { status: 429, message: `Too many failed sign-in attempts. Try again in ${result.retryAfter} seconds.`, valUserId });
      } else {
        await showLogin(ctx, deps, details, { status: 400, message: GENERIC_FAILURE, invalid: true, valUserId });
      }
      return;
    }

    // DESIGN: a user provisioned for no VAL service gets access_denied, not empty tokens.
    if ((await servicesOfUser(deps.db, valUserId)).length === 0) {
      await audit('failure', 'no_val_service');
      await deps.provider().interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: 'the VAL user is not provisioned for any VAL service',
      }, { mergeWithLastSubmission: false });
      ctx.respond = false;
      return;
    }

    await audit('success');
    // prompt=consent (OIDC Core §11, needed for offline_access) is answered in the same step: consent is implicit.
    const consent = String(details.params.prompt ?? '').split(' ').includes('consent') ? { consent: {} } : {};
    await deps.provider().interactionFinished(ctx.req, ctx.res, { login: { accountId: valUserId, amr: ['pwd'] }, ...consent }, { mergeWithLastSubmission: false });
    ctx.respond = false;
  });

  return router;
}

async function loadDetails(ctx: Context & { params: Record<string, string> }, deps: InteractionDeps): Promise<Details | undefined> {
  try {
    const details = await deps.provider().interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid) throw new errors.SessionNotFound('interaction mismatch');
    return details;
  } catch (err) {
    if (!(err instanceof errors.OIDCProviderError)) throw err;
    setPageSecurityHeaders(ctx);
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = renderPage('error', 'Sign-in expired', {
      error: 'This sign-in request has expired or was opened in another browser.',
      description: 'Go back to the application and start signing in again.',
    });
    return undefined;
  }
}

async function showLogin(
  ctx: Context,
  deps: InteractionDeps,
  details: Details,
  view: { status: number; message?: string; invalid?: boolean; valUserId?: string },
): Promise<void> {
  const client = await deps.provider().Client.find(String(details.params.client_id));
  const redirectUri = String(details.params.redirect_uri ?? '');
  setPageSecurityHeaders(ctx, originOf(redirectUri));
  ctx.status = view.status;
  ctx.type = 'html';
  ctx.body = renderPage('login', 'Sign in', {
    clientName: client?.clientName ?? client?.clientId ?? 'the application',
    action: `/interaction/${details.uid}/login`,
    csrf: csrfToken(deps.csrfKey, details.uid),
    valUserId: view.valUserId ?? '',
    errorBlock: view.message ? renderFragment('login-error', { message: view.message }) : '',
    // WCAG 3.3.1: the fields point at the message explaining the failure, and are marked invalid when they caused it.
    fieldErrorAttrs: view.message ? `aria-describedby="login-error"${view.invalid ? ' aria-invalid="true"' : ''}` : '',
    userAutofocus: view.valUserId ? '' : 'autofocus',
    passwordAutofocus: view.valUserId ? 'autofocus' : '',
  });
}

// The token binds the form to this interaction; the interaction cookie binds it to this browser.
function csrfToken(key: Buffer, uid: string): string {
  return crypto.createHmac('sha256', key).update(`login:${uid}`).digest('base64url');
}

function csrfMatches(key: Buffer, uid: string, presented: string): boolean {
  const expected = Buffer.from(csrfToken(key, uid));
  const given = Buffer.from(presented);
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

function originOf(uri: string): string[] {
  try {
    return [new URL(uri).origin];
  } catch {
    return [];
  }
}
