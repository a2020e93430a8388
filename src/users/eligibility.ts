// Token eligibility: may this VAL user get tokens of this server, and with which VAL service IDs. The one rule
// (DESIGN, layer rules): login, findAccount, refresh, token exchange, JWT bearer and introspection all ask it and map
// the answer to their own protocol error.
import type { Db } from '../db/knex.ts';
import { readUserStanding, type UserStandingRow } from '../provisioning/store.ts';
import type { UserStatus } from './store.ts';

export type Eligibility =
  /** A local user (credentials here), active, provisioned for at least one VAL service. */
  | { kind: 'ok'; services: string[] }
  /**
   * No local record but provisioned here: a partner domain's VAL user, known only by this domain's service mapping
   * of their VAL user ID (RFC 7523 grant, TS 33.180 annex B.7.4). Eligible for what the partner side issues.
   */
  | { kind: 'visitor'; services: string[] }
  /** A local user, disabled (whatever they are provisioned for). */
  | { kind: 'disabled' }
  /** A local user, active, provisioned for no VAL service: DESIGN, val_service_ids is never empty, so no tokens. */
  | { kind: 'no_service' }
  /** Neither a local record nor a mapping. */
  | { kind: 'unknown' }
  /** The token's grant asked about is gone (revoked after a replay or a logout, RFC 9700 §4.14.2; or expired). */
  | { kind: 'grant_revoked' };

export type EligibilityOptions = {
  /** Also ask whether this grant still exists, in the same round trip (introspection and token exchange). */
  grantId?: string;
};

/** The answer for one VAL user: one prepared statement (status, services and the grant together). */
export async function tokenEligibility(db: Db, valUserId: string, options: EligibilityOptions = {}): Promise<Eligibility> {
  return eligibilityOf(await readUserStanding(db, valUserId, options.grantId), options.grantId !== undefined);
}

/** The rule itself, on what the store read. `grantAsked`: whether `grantLive` answers a question. */
export function eligibilityOf(standing: UserStandingRow, grantAsked = false): Eligibility {
  if (grantAsked && !standing.grantLive) return { kind: 'grant_revoked' };
  if (standing.status === 'disabled') return { kind: 'disabled' };
  if (standing.services.length === 0) return { kind: standing.status === 'active' ? 'no_service' : 'unknown' };
  return { kind: standing.status === 'active' ? 'ok' : 'visitor', services: standing.services };
}

/** The VAL service IDs a token of this VAL user carries; undefined when the user may get no token. */
export function eligibleServices(answer: Eligibility): string[] | undefined {
  return answer.kind === 'ok' || answer.kind === 'visitor' ? answer.services : undefined;
}

/** Whether the VAL user has a record (credentials) here, i.e. is one of this domain's own users. */
export function isLocalUser(answer: Eligibility): boolean {
  return answer.kind === 'ok' || answer.kind === 'disabled' || answer.kind === 'no_service';
}

// Every status a local record can have (none: no record), for eligibilityConditionSql.
const STATUSES = { active: true, disabled: true } satisfies Record<UserStatus, true>;

/**
 * The rule as an SQL condition on a statement's standing columns (userStandingSql, src/provisioning/store.ts): true
 * exactly for the standings whose answer `accepts`. For a write that must happen in the same statement as the read,
 * and only when the request will succeed (issue 16: token exchange's success event, the JWT-bearer grant's spend of
 * the security token). Built by asking eligibilityOf about every standing it tells apart (each status or no record,
 * some VAL service or none, grant live or not), so the rule is still only eligibilityOf. `accepts` must decide on the
 * answer's kind and whether it has services, never on which services: the condition knows no service ID.
 */
export function eligibilityConditionSql(accepts: (answer: Eligibility) => boolean, grantAsked: boolean): string {
  const cases: string[] = [];
  for (const status of [undefined, ...(Object.keys(STATUSES) as UserStatus[])]) {
    for (const provisioned of [false, true]) {
      for (const grantLive of [false, true]) {
        if (!accepts(eligibilityOf({ status, services: provisioned ? ['any'] : [], grantLive }, grantAsked))) continue;
        // A status is one of the literals above, never input.
        cases.push(`('${status ?? ''}', ${provisioned}, ${grantLive})`);
      }
    }
  }
  return cases.length === 0 ? 'false' : `((coalesce(status, ''), cardinality(services) > 0, grant_live) in (${cases.join(', ')}))`;
}
