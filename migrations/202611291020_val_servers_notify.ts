// NOTIFY on changes to VAL servers, so every instance drops its cached SLA rows (src/db/change-feed.ts): a disabled
// or shortened SLA stops the VAL server's tokens and introspection at once without a lookup per request.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // idms_notify_cache_change() comes from 202611231330_cache_change_notify; one notification per statement.
  await knex.raw(`create trigger val_servers_change after insert or update or delete or truncate on val_servers
    for each statement execute function idms_notify_cache_change('val_servers')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists val_servers_change on val_servers');
}
