// The OIDC account of a VAL user: its claims and the VAL service IDs that go into every token.
import { errors, type Account, type KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/knex.ts';
import { standingColumnsSql, standingFromColumns } from '../provisioning/store.ts';
import { eligibilityOf, eligibleServices, tokenEligibility, type Eligibility } from '../users/eligibility.ts';
import { readAccountsWithRecords } from './adapter.ts';

// One lookup per request even though findAccount, extraTokenClaims and the grants all need it.
const perRequest = new WeakMap<object, Map<string, Promise<Eligibility>>>();

/** The token eligibility of a VAL user (src/users/eligibility.ts), read once per request. */
export function eligibilityForRequest(ctx: object, db: Db, valUserId: string): Promise<Eligibility> {
  let cache = perRequest.get(ctx);
  if (!cache) perRequest.set(ctx, (cache = new Map()));
  let answer = cache.get(valUserId);
  if (!answer) cache.set(valUserId, (answer = tokenEligibility(db, valUserId)));
  return answer;
}

// The account of a refresh token's or a code's grant is read with the token and its grant, and the account of a login
// result with its interaction at the resume step (one round trip each, issue 16): the answer is the same rule's
// (eligibilityOf) on the same columns, kept for this request like any other.
readAccountsWithRecords({
  columns: standingColumnsSql,
  use: (ctx, accountId, row) => {
    let cache = perRequest.get(ctx);
    if (!cache) perRequest.set(ctx, (cache = new Map()));
    if (!cache.has(accountId)) cache.set(accountId, Promise.resolve(eligibilityOf(standingFromColumns(row))));
  },
});

/**
 * Narrows the VAL service IDs the rest of this request sees for an eligible VAL user (and so the token's
 * val_service_ids): the partner side keeps only the services a partner's policy allows (src/oidc/grants/jwt-bearer.ts).
 */
export function narrowServicesForRequest(ctx: object, valUserId: string, narrowed: Eligibility & { services: string[] }): void {
  let cache = perRequest.get(ctx);
  if (!cache) perRequest.set(ctx, (cache = new Map()));
  cache.set(valUserId, Promise.resolve(narrowed));
}

/** The VAL service IDs this request's tokens carry for a VAL user; none when the user may get no token. */
export async function servicesForRequest(ctx: object, db: Db, valUserId: string): Promise<string[]> {
  return eligibleServices(await eligibilityForRequest(ctx, db, valUserId)) ?? [];
}

// Routes where the absence of any VAL service must stop token issuance with access_denied.
const ISSUING_ROUTES = new Set(['authorization', 'resume', 'token']);

/**
 * findAccount's answer: an account for a local user who may get tokens; none otherwise (oidc-provider then ends the
 * session, or refuses a refresh with invalid_grant), except that a local user provisioned for no VAL service is
 * access_denied where tokens would be issued (DESIGN: val_service_ids is never empty). A partner domain's user
 * (visitor) has no account here: the JWT-bearer grant issues their tokens without one.
 */
export function accountFor(sub: string, answer: Eligibility, route: string | undefined): Account | undefined {
  if (answer.kind === 'no_service' && ISSUING_ROUTES.has(route ?? '')) throw new errors.AccessDenied('the VAL user is not provisioned for any VAL service');
  if (answer.kind !== 'ok') return undefined;
  const services = answer.services;
  return {
    accountId: sub,
    claims: () => ({ sub, val_user_id: sub, val_service_ids: services }),
  };
}

export function createFindAccount(db: Db) {
  return async function findAccount(ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> {
    return accountFor(sub, await eligibilityForRequest(ctx, db, sub), ctx.oidc?.route);
  };
}
