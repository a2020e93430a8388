// Each VAL server owns the mappings it provisioned: the key of val_service_users gains the provisioner
// (docs/provisioning.md, shared VAL services), so two VAL servers listing the same user never share a row.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // (service, provisioner, user): Provide_Configuration's replace-set and GET's paginated listing both range
  // over one VAL server's entries of one service. The (val_user_id, val_service_id) index stays for token issuance.
  await knex.raw('alter table val_service_users drop constraint val_service_users_pkey');
  await knex.raw('alter table val_service_users add constraint val_service_users_pkey primary key (val_service_id, provisioned_by, val_user_id)');
}

export async function down(knex: Knex): Promise<void> {
  // Collapses co-owned pairs back to one row (the earliest provisioner keeps it) before restoring the pair key.
  await knex.raw(`delete from val_service_users v using val_service_users w
    where v.val_service_id = w.val_service_id and v.val_user_id = w.val_user_id
      and (v.provisioned_at, v.provisioned_by) > (w.provisioned_at, w.provisioned_by)`);
  await knex.raw('alter table val_service_users drop constraint val_service_users_pkey');
  await knex.raw('alter table val_service_users add constraint val_service_users_pkey primary key (val_service_id, val_user_id)');
}
