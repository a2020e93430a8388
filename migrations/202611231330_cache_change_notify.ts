// NOTIFY on changes to clients, resource servers and partners, so every instance drops its cached copies (src/db/change-feed.ts).
import type { Knex } from 'knex';

// Must match CHANGE_CHANNEL in src/db/change-feed.ts. The payload names the cache to drop.
const CHANNEL = 'idms_cache';

export async function up(knex: Knex): Promise<void> {
  // pg_notify is transactional: listeners hear of a change only when it commits, and never of a rolled-back one.
  await knex.raw(`
    create function idms_notify_cache_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify('${CHANNEL}', tg_argv[0]);
      return null;
    end $$`);

  // Clients live among all other OIDC artifacts; a WHEN clause keeps the per-token writes free of the call.
  await knex.raw(`create trigger oidc_payloads_client_insert after insert on oidc_payloads
    for each row when (new.kind = 'Client') execute function idms_notify_cache_change('clients')`);
  await knex.raw(`create trigger oidc_payloads_client_update after update on oidc_payloads
    for each row when (old.kind = 'Client' or new.kind = 'Client') execute function idms_notify_cache_change('clients')`);
  await knex.raw(`create trigger oidc_payloads_client_delete after delete on oidc_payloads
    for each row when (old.kind = 'Client') execute function idms_notify_cache_change('clients')`);

  for (const table of ['resource_servers', 'partners']) {
    await knex.raw(`create trigger ${table}_change after insert or update or delete or truncate on ${table}
      for each statement execute function idms_notify_cache_change('${table}')`);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['resource_servers', 'partners']) await knex.raw(`drop trigger if exists ${table}_change on ${table}`);
  for (const op of ['insert', 'update', 'delete']) await knex.raw(`drop trigger if exists oidc_payloads_client_${op} on oidc_payloads`);
  await knex.raw('drop function if exists idms_notify_cache_change()');
}
