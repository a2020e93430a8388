// Opens the configured database: IDMS_DATABASE_URL, or the embedded PostgreSQL in the data dir. Migrates it.
import type { Config } from '../config/env.ts';
import { openEmbeddedDatabase } from './embedded.ts';
import { createKnex, type Db } from './knex.ts';
import { migrateLatest } from './migrate.ts';

export type Database = {
  db: Db;
  /**
   * Reads that may lag (IDMS_DATABASE_READ_URL replicas; docs/ha.md says which reads use it). The primary's handle
   * when no read URL is configured. Never for a read that must see this request's own writes.
   */
  readDb: Db;
  url: string;
  embedded: boolean;
  close(): Promise<void>;
};

export type OpenOptions = {
  migrate?: boolean;
  poolMax?: number;
  log?: (line: string) => void;
  /** The caller drains on SIGINT/SIGTERM and closes the database itself (serve); see openEmbeddedDatabase. */
  handlesSignals?: boolean;
};

export async function openDatabase(config: Config, options: OpenOptions): Promise<Database> {
  const embedded = config.databaseUrl ? undefined : await openEmbeddedDatabase(config.dataDir, options.log, { handlesSignals: options.handlesSignals });
  const url = config.databaseUrl ?? embedded!.url;
  const db = createKnex(url, { max: options.poolMax ?? 10 }, { log: options.log });
  const readDb = config.databaseReadUrl ? createKnex(config.databaseReadUrl, { max: options.poolMax ?? 10 }, { role: 'read', log: options.log }) : db;
  const destroy = async () => {
    await db.destroy();
    if (readDb !== db) await readDb.destroy();
  };
  try {
    if (options.migrate !== false) await migrateLatest(db);
  } catch (err) {
    await destroy();
    if (embedded?.startedHere) await embedded.release();
    throw err;
  }
  return {
    db,
    readDb,
    url,
    embedded: embedded !== undefined,
    async close() {
      await destroy();
      // Only the process that started the embedded cluster stops it; attached processes leave it running.
      if (embedded?.startedHere) await embedded.release();
    },
  };
}
