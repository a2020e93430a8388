// Initial schema: users, VAL servers and their SLA, service mappings, oidc-provider storage, keys, partners, audit.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('val_users', (t) => {
    t.text('val_user_id').primary(); // case-sensitive, as TS 23.434 identifiers are opaque strings
    t.text('password_hash');
    t.text('status').notNullable().defaultTo('active').checkIn(['active', 'disabled']);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  // Failed-login counters keyed by the submitted identifier, whether or not such a user exists,
  // so throttling behaves the same for unknown IDs and does not reveal which IDs exist.
  await knex.schema.createTable('login_attempts', (t) => {
    t.text('key').primary();
    t.integer('failures').notNullable().defaultTo(0);
    t.timestamp('window_start', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('locked_until', { useTz: true });
    t.index(['window_start'], 'login_attempts_window_start_idx'); // sweep of stale counters
  });

  await knex.schema.createTable('val_servers', (t) => {
    t.text('requester_identity').primary();
    t.text('client_id').notNullable().unique(); // token → VAL server at every provisioning call
    t.text('endpoint');
    t.specificType('allowed_service_ids', 'text[]').notNullable();
    t.timestamp('valid_until', { useTz: true });
    t.integer('max_users_per_service');
    t.text('status').notNullable().defaultTo('active').checkIn(['active', 'disabled']);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('val_service_users', (t) => {
    t.text('val_service_id').notNullable();
    t.text('val_user_id').notNullable(); // may name a user with no credentials yet: no foreign key
    t.text('provisioned_by').notNullable();
    t.timestamp('provisioned_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['val_service_id', 'val_user_id']); // replace-set and paginated listing per service
    t.index(['val_user_id', 'val_service_id'], 'val_service_users_user_idx'); // services of a user, at every token
  });

  await knex.schema.createTable('oidc_payloads', (t) => {
    t.text('kind').notNullable();
    t.text('id').notNullable();
    t.jsonb('payload').notNullable();
    t.text('grant_id');
    t.text('uid');
    t.text('user_code');
    t.timestamp('expires_at', { useTz: true });
    t.timestamp('consumed_at', { useTz: true });
    t.primary(['kind', 'id']);
    t.index(['grant_id'], 'oidc_payloads_grant_id_idx', { predicate: knex.whereNotNull('grant_id') }); // revokeByGrantId
    t.index(['uid'], 'oidc_payloads_uid_idx', { predicate: knex.whereNotNull('uid') }); // findByUid (sessions)
    t.index(['user_code'], 'oidc_payloads_user_code_idx', { predicate: knex.whereNotNull('user_code') }); // findByUserCode
    t.index(['expires_at'], 'oidc_payloads_expires_at_idx', { predicate: knex.whereNotNull('expires_at') }); // sweep
  });

  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('alg').notNullable();
    t.jsonb('public_jwk').notNullable();
    t.text('private_jwk_encrypted').notNullable(); // AES-256-GCM under a key derived from IDMS_SECRET
    t.text('status').notNullable().checkIn(['active', 'retired']);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('retired_at', { useTz: true });
    t.index(['status'], 'signing_keys_status_idx');
  });

  await knex.schema.createTable('resource_servers', (t) => {
    t.text('identifier').primary(); // RFC 8707 resource indicator = access token aud
    t.text('scope').notNullable().defaultTo('');
    t.text('signing_alg').notNullable().defaultTo('ES256').checkIn(['ES256', 'RS256']);
    t.integer('access_token_ttl');
    t.text('description');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('partners', (t) => {
    t.text('issuer').primary();
    t.jsonb('jwks');
    t.text('certificate');
    t.jsonb('policy').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id');
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('actor').notNullable();
    t.text('action').notNullable();
    t.text('subject');
    t.text('result').notNullable();
    t.jsonb('details').notNullable().defaultTo('{}');
    t.index(['at'], 'audit_events_at_idx'); // audit list, newest first
    t.index(['action', 'at'], 'audit_events_action_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'audit_events',
    'partners',
    'resource_servers',
    'signing_keys',
    'oidc_payloads',
    'val_service_users',
    'val_servers',
    'login_attempts',
    'val_users',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
