// VAL users of a partner domain: known here only by this domain's service mapping of their VAL user ID, with no credentials.
import type { UserStanding } from '../oidc/account.ts';

/**
 * Whether a VAL user may hold an access token of this server: a local record, when there is one, must be active;
 * without one (a partner domain's user, after the JWT-bearer grant) at least one VAL service must be provisioned here.
 * Takes the standing read by userStanding (introspection reads it together with the token's grant, in one round trip).
 */
export function standingAllowsTokens({ status, services }: UserStanding): boolean {
  if (status !== undefined) return status === 'active';
  return services.length > 0;
}
