// Admin use cases of VAL users (issue 15): a resumed import reports the mappings of the whole import, and a user's
// sessions and grants are found by account, so `user delete` and `user sessions revoke` read an index, not every grant.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Mappings added by every run of one file; a rerun adds to it, as it does to created/updated/rejected.
  await knex.schema.alterTable('user_imports', (t) => {
    t.integer('services_added').notNullable().defaultTo(0);
  });
  // oidc-provider keeps the VAL user ID as payload.accountId in Session and Grant records; every token, code and
  // refresh token of a grant carries its grant_id (already indexed). Partial: only the two kinds looked up by account.
  await knex.raw(`create index oidc_payloads_account_idx on oidc_payloads ((payload->>'accountId')) where kind in ('Session', 'Grant')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists oidc_payloads_account_idx');
  await knex.schema.alterTable('user_imports', (t) => {
    t.dropColumn('services_added');
  });
}
