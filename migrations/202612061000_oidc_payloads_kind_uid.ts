// Sessions by uid and device codes by user code, with their kind (issue 16): every login's code redemption joins the
// session it came from by uid. The index on uid alone left the planner free to AND it with a scan of every Session's
// primary key when it had no statistics yet, so a login's cost grew with the number of sessions; (kind, uid) serves
// `kind = … and uid = …` alone whatever the statistics say.
import type { Knex } from 'knex';

// Built CONCURRENTLY, outside a transaction, so an upgrade does not hold writes to oidc_payloads (every login, token
// and refresh) for the time the build takes; an interrupted build leaves an invalid index that the next run replaces.
export const config = { transaction: false };

const INDEXES = [
  { name: 'oidc_payloads_kind_uid_idx', column: 'uid', old: 'oidc_payloads_uid_idx' },
  { name: 'oidc_payloads_kind_user_code_idx', column: 'user_code', old: 'oidc_payloads_user_code_idx' },
];

export async function up(knex: Knex): Promise<void> {
  for (const { name, column, old } of INDEXES) {
    await knex.raw(`drop index concurrently if exists ${name}`);
    await knex.raw(`create index concurrently ${name} on oidc_payloads (kind, ${column}) where ${column} is not null`);
    await knex.raw(`drop index concurrently if exists ${old}`);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const { name, column, old } of INDEXES) {
    await knex.raw(`create index concurrently if not exists ${old} on oidc_payloads (${column}) where ${column} is not null`);
    await knex.raw(`drop index concurrently if exists ${name}`);
  }
}
