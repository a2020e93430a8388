// Pairs of ss-ipp configurations without per-row foreign keys: PostgreSQL checks a foreign key row by row, which cost
// ~0.45 s per 100,000 provisioned pairs (bench/provisioning.ts), half of a 100,000-user provisioning call. The
// pairs' configuration is kept by the code instead (docs/provisioning.md, "Storage"): a configuration's pairs are
// written only by a writer holding its row (PUT, PATCH, the compatibility API's upsert) or by the transaction that
// created it (POST), and deleted with it (deleteConfigurationRow) or before an emptied one is dropped.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table val_service_users drop constraint val_service_users_conf_id_fkey');
  await knex.raw('alter table val_service_ues drop constraint val_service_ues_conf_id_foreign');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(
    'delete from val_service_users v where v.conf_id is not null and not exists (select 1 from val_service_configurations c where c.conf_id = v.conf_id)',
  );
  await knex.raw('delete from val_service_ues e where not exists (select 1 from val_service_configurations c where c.conf_id = e.conf_id)');
  await knex.raw(
    'alter table val_service_users add constraint val_service_users_conf_id_fkey foreign key (conf_id) references val_service_configurations (conf_id) on delete cascade',
  );
  await knex.raw(
    'alter table val_service_ues add constraint val_service_ues_conf_id_foreign foreign key (conf_id) references val_service_configurations (conf_id) on delete cascade',
  );
}
