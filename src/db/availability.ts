// Tells "PostgreSQL cannot be reached right now" apart from other database errors, so callers answer 503 and retry later.

// Socket-level failures of the pg driver while connecting or mid-query.
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// pg driver messages for a connection that the server closed, that broke, or whose answer never came (query_timeout):
// they carry no code.
const DRIVER_MESSAGES = /Connection terminated|connection is not queryable|Client has encountered a connection error|Client was closed|Query read timeout/i;

type ErrorLike = { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };

function some(err: unknown, test: (e: ErrorLike) => boolean): boolean {
  // Duck-typed rather than instanceof Error: socket errors are created by Node's internals, which need not share
  // the realm of the code that catches them (jest's module sandbox, for one).
  for (let e = err as ErrorLike | undefined, depth = 0; typeof e === 'object' && e !== null && depth < 3; e = e.cause as ErrorLike | undefined, depth++) {
    if (test(e)) return true;
  }
  return false;
}

/**
 * The error says this connection's server is gone or is no longer the one we want: the connection is dropped and the
 * pool looks for the (new) primary (src/db/failover.ts).
 */
export function signalsFailover(err: unknown): boolean {
  return some(err, (e) => {
    const code = e.code;
    if (typeof code === 'string') {
      if (SOCKET_CODES.has(code)) return true;
      // SQLSTATE class 08 connection exception; 57P01-57P03 admin/crash shutdown, cannot connect now;
      // 25006 read_only_sql_transaction: the server we write to has become (or always was) a standby.
      if (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === '25006') return true;
    }
    return typeof e.message === 'string' && DRIVER_MESSAGES.test(e.message);
  });
}

export function isDatabaseUnavailable(err: unknown): boolean {
  if (signalsFailover(err)) return true;
  return some(err, (e) => {
    // knex: no pooled connection within acquireConnectionTimeout (database down, or saturated).
    if (e.name === 'KnexTimeoutError') return true;
    // 53300 too many connections; 57014 statement_timeout reached (bounded waits, src/db/hosts.ts);
    // IDMS_NO_USABLE_HOST: no listed host is reachable and fit (during a failover, before the standby's promotion).
    // IDMS_SYNC_REP_CANCELLED: committed on the primary alone, so not acknowledged (src/db/failover.ts).
    return e.code === '53300' || e.code === '57014' || e.code === 'IDMS_NO_USABLE_HOST' || e.code === 'IDMS_SYNC_REP_CANCELLED';
  });
}
