// Counts the statements this process sends to PostgreSQL through its pools (one per client.query call, BEGIN and
// COMMIT included), so the cost of a request in round trips can be read from idms_db_statements_total where
// pg_stat_statements is not loaded (it needs shared_preload_libraries and a server restart).
import type pg from 'pg';

let executed = 0;
const counted = new WeakSet<pg.Client>();

/** Wraps a pooled connection's query so that each statement it sends is counted; returns the connection. */
export function countStatements(client: pg.Client): pg.Client {
  if (counted.has(client)) return client;
  counted.add(client);
  const query = client.query;
  client.query = function countedQuery(this: pg.Client, ...args: unknown[]) {
    executed++;
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof client.query;
  return client;
}

/** Statements sent by this process's pools since it started. */
export function statementsExecuted(): number {
  return executed;
}
