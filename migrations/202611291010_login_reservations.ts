// Login attempts are reserved before the password is checked, keyed by a keyed hash of the VAL user ID, and one
// login form accepts one submission at a time (issue 10, items 1 and 9; docs/security.md).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // `attempts` now counts reserved password checks (in flight or failed), not only recorded failures.
  await knex.schema.alterTable('login_attempts', (t) => {
    t.renameColumn('failures', 'attempts');
    // The decision of the statement that last wrote the row, read back by its RETURNING (an upsert cannot return the
    // row as it was before, so "was it locked?" is written into the row it returns).
    t.boolean('last_allowed').notNullable().defaultTo(true);
  });
  // Per-user keys held the submitted ID in clear (possibly a password typed into the wrong field). They cannot be
  // rehashed here (the key derives from IDMS_SECRET), so per-user counters restart once at this upgrade.
  await knex('login_attempts').where('key', 'like', 'user:%').delete();
  // The same clear text in the audit trail: a failed login whose actor names no user may be a password.
  await knex('audit_events')
    .where({ action: 'login', result: 'failure' })
    .whereNotIn('actor', knex('val_users').select('val_user_id'))
    .update({ actor: 'unknown:redacted' });

  // One password check per login interaction at a time, across workers: the row is the in-flight marker.
  await knex.schema.createTable('login_submissions', (t) => {
    // Keyed hash of the oidc-provider interaction uid (a bearer value: it is the interaction cookie's value, and
    // no table holds those in clear); insert … on conflict decides who submits.
    t.text('uid_hash').primary();
    t.text('token').notNullable(); // the holder's random token: only it releases the marker
    t.timestamp('expires_at', { useTz: true }).notNullable(); // a crashed worker's marker lapses
    t.index(['expires_at'], 'login_submissions_expires_at_idx'); // sweep
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('login_submissions');
  await knex.schema.alterTable('login_attempts', (t) => {
    t.dropColumn('last_allowed');
    t.renameColumn('attempts', 'failures');
  });
}
