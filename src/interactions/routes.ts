// The login interaction: the HTML form (VAL user ID + password) that oidc-provider sends users to.
import crypto from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors, type InteractionResults } from 'oidc-provider';
import { readForm } from '../http/body.ts';
import { renderErrorPage } from '../http/errors.ts';
import { canonicalId } from '../users/ids.ts';
// acr 3gpp:acr:password and amr pwd (TS 33.434 A.4.2.2, RFC 8176).
import { PASSWORD_LOGIN } from '../oidc/claims.ts';
import { logIn, type LoginDeps, type LoginOutcome } from './login.ts';
import { formatCount, messagesFor } from './i18n.ts';
import { renderFragment, sendPage, type PageSite } from './views.ts';

export type InteractionDeps = LoginDeps & {
  csrfKey: Buffer;
  provider: () => Provider;
  /** The operator's name on the pages (IDMS_DISPLAY_NAME). */
  site: PageSite;
};

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
      await showLogin(ctx, deps, details, { status: 403, message: 'formExpired' });
      return;
    }
    if (details.prompt.name !== 'login') {
      await showLogin(ctx, deps, details, { status: 400, message: 'noLongerValid' });
      return;
    }
    const password = form.get('password') ?? '';
    // The one ID rule (users/ids.ts): the NFC form is the ID for the throttle, the lookup, the audit trail and the
    // session, so the NFC and NFD spellings of one name are one user; an ID that cannot be one (control characters,
    // lone surrogates, over 255 bytes) gets the generic answer without a password check (issue 10, item 8).
    const id = canonicalId(form.get('val_user_id') ?? '');
    if (!id.ok || !password) {
      await showLogin(ctx, deps, details, { status: 400, message: 'failed', invalid: true, valUserId: id.ok ? id.id : '' });
      return;
    }
    const valUserId = id.id;

    const result = await logIn(deps, { valUserId, password, ip: ctx.ip, clientId: String(details.params.client_id), interactionUid: details.uid });
    await answerLogin(ctx, deps, details, valUserId, result);
  });

  return router;
}

/** Renders the login's outcome: the form again, or back to oidc-provider. */
async function answerLogin(ctx: Context, deps: InteractionDeps, details: Details, valUserId: string, result: LoginOutcome): Promise<void> {
  if (result.kind === 'busy') {
    ctx.set('Retry-After', '1');
    await showLogin(ctx, deps, details, { status: 429, message: 'busy', valUserId });
    return;
  }
  if (result.kind === 'throttled') {
    ctx.set('Retry-After', String(result.retryAfter));
    await showLogin(ctx, deps, details, { status: 429, message: { throttled: result.retryAfter }, valUserId });
    return;
  }
  if (result.kind === 'invalid') {
    await showLogin(ctx, deps, details, { status: 400, message: 'failed', invalid: true, valUserId });
    return;
  }
  if (result.kind === 'refused') {
    await finishInteraction(ctx, details, { error: result.error, error_description: result.description });
    return;
  }
  // prompt=consent (OIDC Core §11, needed for offline_access) is answered in the same step: consent is implicit.
  const consent = String(details.params.prompt ?? '')
    .split(' ')
    .includes('consent')
    ? { consent: {} }
    : {};
  await finishInteraction(ctx, details, { login: { accountId: result.valUserId, ...PASSWORD_LOGIN, amr: [...PASSWORD_LOGIN.amr] }, ...consent });
}

/**
 * Stores the login's result on the interaction and sends the browser back to oidc-provider: what interactionFinished
 * does without mergeWithLastSubmission, on the interaction this request has already read (interactionFinished reads it
 * again, one statement more per login, issue 16). The resume step checks the interaction and the session as before.
 */
async function finishInteraction(ctx: Context, details: Details, result: InteractionResults): Promise<void> {
  details.result = result;
  await details.persist();
  ctx.res.statusCode = 303;
  ctx.res.setHeader('Location', details.returnTo);
  ctx.res.setHeader('Content-Length', '0');
  ctx.res.end();
  ctx.respond = false;
}

async function loadDetails(ctx: Context & { params: Record<string, string> }, deps: InteractionDeps): Promise<Details | undefined> {
  try {
    const details = await deps.provider().interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid) throw new errors.SessionNotFound('interaction mismatch');
    return details;
  } catch (err) {
    if (!(err instanceof errors.OIDCProviderError)) throw err;
    // The code and oidc-provider's description in small print; no ui_locales (they are in the interaction we lost).
    renderErrorPage(ctx, deps.site, { error: err.error, description: err.error_description, kind: 'login_expired' }, 400);
    return undefined;
  }
}

/** What the form says above the fields after a submission (texts in src/interactions/locales/). */
type LoginMessage = 'failed' | 'busy' | 'formExpired' | 'noLongerValid' | { throttled: number };

async function showLogin(
  ctx: Context,
  deps: InteractionDeps,
  details: Details,
  view: { status: number; message?: LoginMessage; invalid?: boolean; valUserId?: string },
): Promise<void> {
  const client = await deps.provider().Client.find(String(details.params.client_id));
  const redirectUri = String(details.params.redirect_uri ?? '');
  // The client's ui_locales from the authorization request (OIDC Core §3.1.2.1), then Accept-Language.
  const t = messagesFor(ctx, details.params.ui_locales);
  const message =
    typeof view.message === 'object' ? formatCount(t, t.login.throttled, view.message.throttled, 'seconds') : view.message && t.login[view.message];
  ctx.status = view.status;
  sendPage(
    ctx,
    'login',
    { t, site: deps.site, title: t.login.title },
    {
      client: client?.clientName ?? client?.clientId ?? t.login.someApplication,
      action: `/interaction/${details.uid}/login`,
      csrf: csrfToken(deps.csrfKey, details.uid),
      valUserId: view.valUserId ?? '',
      errorBlock: message ? renderFragment('login-error', t, { message }) : '',
      // WCAG 3.3.1: the fields point at the message explaining the failure, and are marked invalid when they caused it.
      fieldErrorAttrs: view.message ? `aria-describedby="login-error"${view.invalid ? ' aria-invalid="true"' : ''}` : '',
      userAutofocus: view.valUserId ? '' : 'autofocus',
      passwordAutofocus: view.valUserId ? 'autofocus' : '',
    },
    originOf(redirectUri),
  );
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
