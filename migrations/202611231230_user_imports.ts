// Checkpoints of `user import`: per CSV file (by content hash), the last line committed, so a rerun resumes there.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('user_imports', (t) => {
    t.text('file_sha256').primary(); // a rerun looks its checkpoint up by the file's content
    t.text('file_name').notNullable();
    t.bigInteger('lines_done').notNullable().defaultTo(0); // last CSV line whose record is committed
    t.integer('created').notNullable().defaultTo(0);
    t.integer('updated').notNullable().defaultTo(0);
    t.integer('rejected').notNullable().defaultTo(0);
    t.jsonb('rejections').notNullable().defaultTo('[]'); // the first reasons (line + reason, never a password)
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('user_imports');
}
