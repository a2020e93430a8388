// Bearer artefacts and client secrets are stored hashed (src/oidc/at-rest.ts). Converting the rows written before needs
// IDMS_SECRET, which migrations do not have: convertLegacyPayloads (src/oidc/adapter.ts) does it right after migrating,
// at start-up and in `cli migrate`. This index lists exactly those rows, so that step costs nothing once they are gone.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Must match LEGACY in src/oidc/adapter.ts: a bearer-id record still carrying its plain jti, a plain client secret.
  await knex.raw(`create index oidc_payloads_legacy_idx on oidc_payloads (kind) where
    ((kind not in ('Client', 'Grant') and payload->>'jti' is not null and payload->>'jti' not like 'enc:%')
      or (kind = 'Client' and payload->>'client_secret' is not null))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists oidc_payloads_legacy_idx');
}
