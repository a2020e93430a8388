// Jest global setup: one PostgreSQL for the run (embedded, or TEST_DATABASE_URL) and a migrated template database.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openEmbeddedDatabase } from '../src/db/embedded.ts';
import { createKnex } from '../src/db/knex.ts';
import { migrateLatest } from '../src/db/migrate.ts';

export default async function globalSetup(): Promise<void> {
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-test-pg-'));
    await fs.chmod(dir, 0o755); // the postgres OS user (when running as root) must reach pg/ inside
    const embedded = await openEmbeddedDatabase(dir);
    (globalThis as Record<string, unknown>).__idmsEmbedded = { embedded, dir };
    adminUrl = embedded.url;
  }
  const template = `idms_tmpl_${process.pid}_${Date.now().toString(36)}`;
  const admin = createKnex(adminUrl, { max: 1 });
  try {
    await admin.raw(`create database ${template}`);
  } finally {
    await admin.destroy();
  }
  const db = createKnex(withDatabase(adminUrl, template), { max: 1 });
  try {
    await migrateLatest(db);
  } finally {
    await db.destroy(); // a template must have no open connections to be copied
  }
  process.env.IDMS_TEST_ADMIN_URL = adminUrl;
  process.env.IDMS_TEST_TEMPLATE = template;
  (globalThis as Record<string, unknown>).__idmsTemplate = { adminUrl, template };
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
