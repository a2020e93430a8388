// Hot statements as named prepared statements on the pool's own connections: PostgreSQL parses and plans each once
// per connection instead of at every call, and the knex query builder is skipped. Used where a request path runs
// the same statement thousands of times a second (the OIDC adapter); everything else goes through knex.
import type pg from 'pg';
import type { Db } from './knex.ts';

type PoolClient = { acquireConnection(): Promise<pg.Client>; releaseConnection(connection: pg.Client): Promise<unknown> };

/**
 * Runs one statement by name. Inside a transaction (`db` a knex transaction) it runs on that transaction's
 * connection, as a knex query would. The name must stand for exactly one text.
 */
export async function queryPrepared<R extends pg.QueryResultRow>(db: Db, name: string, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
  const client = db.client as PoolClient;
  const connection = await client.acquireConnection();
  try {
    return await connection.query<R>({ name, text, values });
  } finally {
    await client.releaseConnection(connection);
  }
}
