// RFC 6749 §5.2 `unauthorized_client` for a client using an inter-domain grant it is not registered for (oidc-provider says invalid_request).
import type Provider from 'oidc-provider';
import { recordAudit } from '../../audit/store.ts';
import type { Db } from '../../db/knex.ts';

// oidc-provider's own wording in lib/actions/token.js (allowedGrantTypeCheck), matched exactly so nothing else is rewritten.
const NOT_ALLOWED = 'requested grant type is not allowed for this client';

/** Rewrites the refusal of `grantType` to a client whose grant_types lack it, after client authentication, and audits it. */
export function refuseUnlistedGrant(provider: Provider, db: Db, grantType: string, auditAction: (params: Record<string, unknown>) => string): void {
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as { error?: string; error_description?: string } | undefined;
    if (ctx.oidc?.route !== 'token' || ctx.oidc.params?.grant_type !== grantType || body?.error !== 'invalid_request' || body.error_description !== NOT_ALLOWED) return;
    ctx.status = 400;
    ctx.body = { error: 'unauthorized_client', error_description: 'the client is not registered for this grant type' };
    await recordAudit(db, {
      actor: ctx.oidc.client?.clientId ?? 'unknown',
      action: auditAction(ctx.oidc.params ?? {}),
      result: 'failure',
      details: { grant: grantType, error: 'unauthorized_client', reason: NOT_ALLOWED },
    });
  });
}
