// Partner policy: the home side finds a partner by its registered token endpoint (TS 33.180 annex B.7.2 `resource`),
// so one token endpoint names at most one partner.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // findPartnerByTokenEndpoint: where policy->>'token_endpoint' = ?
  await knex.raw(`create unique index partners_token_endpoint_idx on partners ((policy->>'token_endpoint')) where (policy->>'token_endpoint') is not null`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists partners_token_endpoint_idx');
}
