// A fresh, migrated database per test file: CREATE DATABASE … TEMPLATE of the one global setup migrated.
import crypto from 'node:crypto';
import { createKnex, type Db } from '../../src/db/knex.ts';

export type TestDatabase = { url: string; db: Db; name: string; drop(): Promise<void> };

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env.IDMS_TEST_ADMIN_URL;
  const template = process.env.IDMS_TEST_TEMPLATE;
  if (!adminUrl || !template) throw new Error('test database not set up: run the tests with jest (global setup)');
  const name = `${template.replace('idms_tmpl_', 'idms_t_')}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = createKnex(adminUrl, { max: 1 });
  try {
    await admin.raw(`create database ${name} template ${template}`);
  } finally {
    await admin.destroy();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const db = createKnex(url, { max: 5 });
  return {
    url,
    db,
    name,
    async drop() {
      await db.destroy();
      const a = createKnex(adminUrl, { max: 1 });
      try {
        await a.raw(`drop database if exists ${name} with (force)`);
      } finally {
        await a.destroy();
      }
    },
  };
}
