// TS 33.434 annex A (VAL profile): the scopes VAL service specifications define, registered per VAL service
// (`service scope`), and the VAL servers authorized to provide key material to the S-KMS (`val-server … --skey-prov`,
// the SKeyProv claim of A.2.2.3).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('val_service_scopes', (t) => {
    t.text('val_service_id').notNullable();
    t.text('scope').notNullable(); // RFC 6749 §3.3 scope-token, e.g. 3gpp:mc:ptt_service
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // One scope may serve several VAL services (and a service several scopes); `service scopes` lists by service.
    t.primary(['val_service_id', 'scope']);
  });
  // The whole table is read at once into each instance's resource-server cache (src/oidc/service-scopes.ts), which
  // this notification drops; the payload is that cache's name (src/db/change-feed.ts).
  await knex.raw(`create trigger val_service_scopes_change after insert or update or delete or truncate on val_service_scopes
    for each statement execute function idms_notify_cache_change('resource_servers')`);

  await knex.schema.alterTable('val_servers', (t) => {
    t.boolean('skey_prov').notNullable().defaultTo(false);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('val_servers', (t) => {
    t.dropColumn('skey_prov');
  });
  await knex.schema.dropTableIfExists('val_service_scopes');
}
