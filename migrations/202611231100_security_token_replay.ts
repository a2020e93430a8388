// Replay store for partner security tokens: each (issuer, jti) is accepted once, by whichever instance sees it first.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('seen_security_tokens', (t) => {
    t.text('issuer').notNullable();
    t.text('jti').notNullable();
    // The token's exp plus the clock-skew leeway: until then a replay would still pass every other check.
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('seen_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['issuer', 'jti']); // RFC 7519 §4.1.7: jti is unique per issuer; insert … on conflict do nothing
    t.index(['expires_at'], 'seen_security_tokens_expires_at_idx'); // sweep
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('seen_security_tokens');
}
