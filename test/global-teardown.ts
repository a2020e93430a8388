// Jest global teardown: drops the template (and any test databases left behind) and stops the embedded PostgreSQL.
import fs from 'node:fs/promises';
import type { EmbeddedDatabase } from '../src/db/embedded.ts';
import { createKnex } from '../src/db/knex.ts';

export default async function globalTeardown(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  const tmpl = g.__idmsTemplate as { adminUrl: string; template: string } | undefined;
  if (tmpl) {
    const admin = createKnex(tmpl.adminUrl, { max: 1 });
    try {
      const left = await admin('pg_database')
        .where('datname', 'like', `${tmpl.template.replace('idms_tmpl_', 'idms_t_')}%`)
        .pluck('datname');
      for (const name of [...left, tmpl.template]) await admin.raw(`drop database if exists ${name} with (force)`);
    } finally {
      await admin.destroy();
    }
  }
  const emb = g.__idmsEmbedded as { embedded: EmbeddedDatabase; dir: string } | undefined;
  if (emb) {
    await emb.embedded.release();
    await fs.rm(emb.dir, { recursive: true, force: true });
  }
}
