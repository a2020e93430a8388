// The OIDC account of a VAL user: its claims and the VAL service IDs that go into every token.
import { errors, type Account, type KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/knex.ts';
import { servicesOfUser } from '../provisioning/store.ts';
import { findUser } from '../users/store.ts';

// One lookup per request even though findAccount and extraTokenClaims both need the services.
const perRequest = new WeakMap<object, Map<string, Promise<string[]>>>();

export function servicesForRequest(ctx: object, db: Db, valUserId: string): Promise<string[]> {
  let cache = perRequest.get(ctx);
  if (!cache) perRequest.set(ctx, (cache = new Map()));
  let services = cache.get(valUserId);
  if (!services) cache.set(valUserId, (services = servicesOfUser(db, valUserId)));
  return services;
}

// Routes where the absence of any VAL service must stop token issuance with access_denied.
const ISSUING_ROUTES = new Set(['authorization', 'resume', 'token']);

export function createFindAccount(db: Db) {
  return async function findAccount(ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> {
    const user = await findUser(db, sub);
    if (!user || user.status !== 'active') return undefined;
    const services = await servicesForRequest(ctx, db, sub);
    if (services.length === 0) {
      // DESIGN: val_service_ids is never empty; a user with no provisioned service gets no tokens.
      if (ISSUING_ROUTES.has(ctx.oidc?.route ?? '')) throw new errors.AccessDenied('the VAL user is not provisioned for any VAL service');
      return undefined;
    }
    return {
      accountId: sub,
      claims: () => ({ sub, val_user_id: sub, val_service_ids: services }),
    };
  };
}
