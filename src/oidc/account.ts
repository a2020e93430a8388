// The OIDC account of a VAL user: its claims and the VAL service IDs that go into every token.
import { errors, type Account, type KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';
import type { UserStatus } from '../users/store.ts';

/**
 * What token issuance and introspection need to know of a VAL user: the local record's status (none for a partner
 * domain's user), the provisioned VAL service IDs and, when asked, whether a grant of theirs still exists.
 */
export type UserStanding = { status: UserStatus | undefined; services: string[]; grantLive: boolean };

// All in one round trip (separate statements were a fifth of a refresh grant's time and half of an introspection's).
// The services subquery is servicesOfUserQuery's (src/provisioning/store.ts), served by the (val_user_id,
// val_service_id) index, plus the services provisioned to the user's VAL UE IDs (val_user_ues, val_service_ues);
// the grant test is the adapter's find of a Grant (src/oidc/adapter.ts).
const STANDING = `select u.status,
    array(select s.val_service_id from val_service_users s where s.val_user_id = $1
          union select e.val_service_id from val_user_ues b join val_service_ues e on e.val_ue_id = b.val_ue_id where b.val_user_id = $1
          order by 1) as services,
    exists(select 1 from oidc_payloads g where g.kind = 'Grant' and g.id = $2 and (g.expires_at is null or g.expires_at > now())) as grant_live
  from (select 1) as one left join val_users u on u.val_user_id = $1`;

export async function userStanding(db: Db, valUserId: string, grantId?: string): Promise<UserStanding> {
  const { rows } = await queryPrepared<{ status: UserStatus | null; services: string[]; grant_live: boolean }>(db, 'user_standing', STANDING, [valUserId, grantId ?? null]);
  return { status: rows[0]!.status ?? undefined, services: rows[0]!.services, grantLive: rows[0]!.grant_live };
}

// One lookup per request even though findAccount, extraTokenClaims and the grants all need it.
const perRequest = new WeakMap<object, Map<string, Promise<UserStanding>>>();

export function standingForRequest(ctx: object, db: Db, valUserId: string): Promise<UserStanding> {
  let cache = perRequest.get(ctx);
  if (!cache) perRequest.set(ctx, (cache = new Map()));
  let standing = cache.get(valUserId);
  if (!standing) cache.set(valUserId, (standing = userStanding(db, valUserId)));
  return standing;
}

/**
 * Narrows the VAL service IDs the rest of this request sees for a VAL user (and so the token's val_service_ids):
 * the partner side keeps only the services a partner's policy allows (src/oidc/grants/jwt-bearer.ts).
 */
export function narrowServicesForRequest(ctx: object, valUserId: string, standing: UserStanding, services: string[]): void {
  let cache = perRequest.get(ctx);
  if (!cache) perRequest.set(ctx, (cache = new Map()));
  cache.set(valUserId, Promise.resolve({ ...standing, services }));
}

export async function servicesForRequest(ctx: object, db: Db, valUserId: string): Promise<string[]> {
  return (await standingForRequest(ctx, db, valUserId)).services;
}

// Routes where the absence of any VAL service must stop token issuance with access_denied.
const ISSUING_ROUTES = new Set(['authorization', 'resume', 'token']);

export function createFindAccount(db: Db) {
  return async function findAccount(ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> {
    const { status, services } = await standingForRequest(ctx, db, sub);
    if (status !== 'active') return undefined;
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
