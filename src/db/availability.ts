// Tells "PostgreSQL cannot be reached right now" apart from other database errors, so callers answer 503 and retry later.

// Socket-level failures of the pg driver while connecting or mid-query.
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// pg driver messages for a connection that the server closed or that broke (they carry no code).
const DRIVER_MESSAGES = /Connection terminated|connection is not queryable|Client has encountered a connection error|Client was closed/i;

type ErrorLike = { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };

export function isDatabaseUnavailable(err: unknown): boolean {
  // Duck-typed rather than instanceof Error: socket errors are created by Node's internals, which need not share
  // the realm of the code that catches them (jest's module sandbox, for one).
  for (let e = err as ErrorLike | undefined, depth = 0; typeof e === 'object' && e !== null && depth < 3; e = e.cause as ErrorLike | undefined, depth++) {
    // knex: no pooled connection within acquireConnectionTimeout (database down, or saturated).
    if (e.name === 'KnexTimeoutError') return true;
    const code = e.code;
    if (typeof code === 'string') {
      if (SOCKET_CODES.has(code)) return true;
      // SQLSTATE class 08 connection exception; 57P01-57P03 admin/crash shutdown, cannot connect now; 53300 too many connections.
      if (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === '53300') return true;
    }
    if (typeof e.message === 'string' && DRIVER_MESSAGES.test(e.message)) return true;
  }
  return false;
}
