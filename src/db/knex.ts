// The one knex factory: every process (server, worker, CLI, tests) reaches PostgreSQL through it.
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';

// int8 (count(*), bigint ids) as JS numbers: our counts stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export type Db = Knex;

export function createKnex(url: string, pool: { min?: number; max?: number } = {}): Db {
  return knexFactory({
    client: 'pg',
    connection: url,
    pool: { min: pool.min ?? 0, max: pool.max ?? 10 },
    // Fail fast when PostgreSQL is unreachable or the pool is saturated: the request answers 503 and the client
    // retries, instead of holding a socket and a queue slot for 10 s (knex's default is 60 s).
    acquireConnectionTimeout: 3000,
  });
}
