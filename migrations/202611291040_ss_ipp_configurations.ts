// TS 29.549 SS_IdmParameterProvisioning (ss-ipp): VAL services configuration resources owned by the VAL server that
// created them, VAL UE IDs as provisioning targets, and VAL users bound to VAL UE IDs (docs/provisioning.md).
import crypto from 'node:crypto';
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // One row per configuration resource (confId in {apiRoot}/ss-ipp/v1/configurations/{confId}). `compatibility`
  // marks the one per VAL server that the seed-named API (Provide_Configuration) writes into.
  await knex.schema.createTable('val_service_configurations', (t) => {
    t.text('conf_id').primary(); // 128 random bits, base64url: unguessable
    t.text('owner').notNullable().references('requester_identity').inTable('val_servers'); // the VAL server that created it
    t.text('supp_feat').notNullable().defaultTo('0'); // negotiated TS 29.571 SupportedFeatures
    t.boolean('compatibility').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['owner', 'created_at'], 'val_service_configurations_owner_idx'); // GET /configurations, `val-server configurations`
  });
  await knex.raw('create unique index val_service_configurations_compat_idx on val_service_configurations (owner) where compatibility');

  // val_service_users stays the one mapping of VAL users that tokens read; each entry now also names the
  // configuration it belongs to (null: the operator's grants and imports). The same user may be in two
  // configurations of one VAL server, so the configuration joins the key (NULLS NOT DISTINCT: PostgreSQL 15+).
  await knex.raw('alter table val_service_users add column conf_id text references val_service_configurations (conf_id) on delete cascade');
  await knex.raw('alter table val_service_users drop constraint val_service_users_pkey');
  await knex.raw(
    'alter table val_service_users add constraint val_service_users_key unique nulls not distinct (val_service_id, provisioned_by, val_user_id, conf_id)',
  );
  // A configuration's own pairs: GET, PUT/PATCH replace, DELETE (and the cascade).
  await knex.raw('create index val_service_users_conf_idx on val_service_users (conf_id, val_service_id) where conf_id is not null');

  // What each VAL server provisioned before configurations existed becomes its compatibility configuration.
  const owners = (await knex('val_service_users').distinct('provisioned_by').whereIn('provisioned_by', knex('val_servers').select('requester_identity'))).map(
    (r: { provisioned_by: string }) => r.provisioned_by,
  );
  for (const owner of owners) {
    const confId = crypto.randomBytes(16).toString('base64url');
    await knex('val_service_configurations').insert({ conf_id: confId, owner, compatibility: true });
    await knex('val_service_users').where({ provisioned_by: owner }).update({ conf_id: confId });
  }

  // VAL UE IDs provisioned to a VAL service (TS 29.549 ValTargetUe.valUeId): only configurations name them.
  await knex.schema.createTable('val_service_ues', (t) => {
    t.text('conf_id').notNullable().references('conf_id').inTable('val_service_configurations').onDelete('CASCADE');
    t.text('val_service_id').notNullable();
    t.text('val_ue_id').notNullable(); // may name a UE bound to no VAL user yet
    t.text('provisioned_by').notNullable(); // the configuration's owner, for per-VAL-server quotas
    t.timestamp('provisioned_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['conf_id', 'val_service_id', 'val_ue_id']);
    t.index(['val_ue_id', 'val_service_id'], 'val_service_ues_ue_idx'); // services of a user's UEs, at every token
    t.index(['val_service_id', 'provisioned_by', 'val_ue_id'], 'val_service_ues_owner_idx'); // quota count
  });

  // Registered VAL servers' OAuth clients may ask for the scope `ss-ipp` too, as `val-server add` now registers them.
  await knex.raw(`update oidc_payloads set payload = jsonb_set(payload, '{scope}', to_jsonb(trim(coalesce(payload->>'scope', '') || ' ss-ipp')))
    where kind = 'Client' and id in (select client_id from val_servers) and position(' ss-ipp ' in ' ' || coalesce(payload->>'scope', '') || ' ') = 0`);

  // A VAL UE ID belongs to at most one VAL user: a service provisioned to the UE reaches that user's tokens.
  await knex.schema.createTable('val_user_ues', (t) => {
    t.text('val_ue_id').primary();
    t.text('val_user_id').notNullable().references('val_user_id').inTable('val_users').onDelete('CASCADE');
    t.timestamp('bound_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['val_user_id', 'val_ue_id'], 'val_user_ues_user_idx'); // the UEs of a user, at every token
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`update oidc_payloads set payload = jsonb_set(payload, '{scope}', to_jsonb(trim(replace(' ' || (payload->>'scope') || ' ', ' ss-ipp ', ' '))))
    where kind = 'Client' and id in (select client_id from val_servers)`);
  await knex.schema.dropTableIfExists('val_user_ues');
  await knex.schema.dropTableIfExists('val_service_ues');
  // Collapses a user listed in two configurations of one VAL server back to one entry before the old key returns.
  await knex.raw(`delete from val_service_users v using val_service_users w
    where v.val_service_id = w.val_service_id and v.provisioned_by = w.provisioned_by and v.val_user_id = w.val_user_id
      and v.ctid > w.ctid`);
  await knex.raw('alter table val_service_users drop constraint val_service_users_key');
  await knex.raw('drop index if exists val_service_users_conf_idx');
  await knex.raw('alter table val_service_users drop column conf_id');
  await knex.raw('alter table val_service_users add constraint val_service_users_pkey primary key (val_service_id, provisioned_by, val_user_id)');
  await knex.schema.dropTableIfExists('val_service_configurations');
}
