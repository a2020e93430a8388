// RFC 6749 §5.2 `unauthorized_client` for a client using one of our grants it is not registered for (oidc-provider says invalid_request).
import type Provider from 'oidc-provider';
import { recordAudit } from '../../audit/store.ts';
import type { Db } from '../../db/knex.ts';
import type { GrantModule } from './grant.ts';

// oidc-provider's own wording in lib/actions/token.js (allowedGrantTypeCheck), matched exactly so nothing else is rewritten.
const NOT_ALLOWED = 'requested grant type is not allowed for this client';

/**
 * One middleware for all the given grants: rewrites oidc-provider's refusal of a grant type the client's grant_types
 * lack, after client authentication, and audits it with the grant's own action.
 */
export function refuseUnlistedGrants(provider: Provider, db: Db, grants: readonly GrantModule[]): void {
  const byType = new Map(grants.map((g) => [g.grantType, g]));
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as { error?: string; error_description?: string } | undefined;
    if (ctx.oidc?.route !== 'token' || body?.error !== 'invalid_request' || body.error_description !== NOT_ALLOWED) return;
    const grantType = ctx.oidc.params?.grant_type;
    const grant = typeof grantType === 'string' ? byType.get(grantType) : undefined;
    if (!grant) return;
    ctx.status = 400;
    ctx.body = { error: 'unauthorized_client', error_description: 'the client is not registered for this grant type' };
    await recordAudit(db, {
      actor: ctx.oidc.client?.clientId ?? 'unknown',
      action: grant.refusalAuditAction(ctx.oidc.params ?? {}),
      result: 'failure',
      details: { grant: grant.grantType, error: 'unauthorized_client', reason: NOT_ALLOWED },
    });
  });
}
