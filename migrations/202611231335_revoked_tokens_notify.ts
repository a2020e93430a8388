// NOTIFY on changes to the access token deny-list, so every instance drops its cached "not revoked" answers (src/db/change-feed.ts).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // idms_notify_cache_change() comes from 202611231330_cache_change_notify; one notification per statement.
  await knex.raw(`create trigger revoked_access_tokens_change after insert or update or delete or truncate on revoked_access_tokens
    for each statement execute function idms_notify_cache_change('revoked_access_tokens')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists revoked_access_tokens_change on revoked_access_tokens');
}
