// Deny-list of revoked JWT access tokens (RFC 7009 for structured tokens), kept until each token would have expired.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('revoked_access_tokens', (t) => {
    t.text('jti').primary(); // introspection and token exchange look a token up by jti
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('revoked_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['expires_at'], 'revoked_access_tokens_expires_at_idx'); // sweep
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('revoked_access_tokens');
}
