// Parses a PostgreSQL URL in libpq's multi-host form (postgres://user:pw@h1:5432,h2:5433/db?target_session_attrs=read-write,
// PostgreSQL docs "Connection URIs" and "target_session_attrs"), which node-postgres does not understand. Pure: no I/O,
// so the configuration module can validate IDMS_DATABASE_URL at start-up with it.

export type TargetSessionAttrs = 'any' | 'read-write' | 'primary' | 'read-only' | 'standby' | 'prefer-standby';
const ATTRS: readonly TargetSessionAttrs[] = ['any', 'read-write', 'primary', 'read-only', 'standby', 'prefer-standby'];

export type DatabaseHost = {
  /** host:port as written (port defaulted), for log lines and errors; never the credentials. */
  label: string;
  /** The URL for this one host: the same user, password, database and parameters, as node-postgres reads it. */
  url: string;
};

export type DatabaseTarget = {
  hosts: DatabaseHost[];
  /** Which session is acceptable (libpq semantics); checked on every new connection unless `any`. */
  attrs: TargetSessionAttrs;
  /** Per-host connection attempt bound (libpq `connect_timeout`, seconds in the URL). */
  connectTimeoutMs: number;
  /** Server-side `statement_timeout` (node-postgres URL parameter, milliseconds); 0 = none. */
  statementTimeoutMs: number;
};

/** What the URL is for: the primary (every write) or the optional read replicas (IDMS_DATABASE_READ_URL). */
export type DatabaseRole = 'primary' | 'read';

export class DatabaseUrlError extends Error {}

export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
/** Longer than any statement of a request or a batch; a statement past it is cancelled and its request answers 503. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 15_000;

// scheme://[userinfo@]hostlist[/database][?params]; userinfo ends at the last '@' (as WHATWG URL parsing has it).
const URL_SHAPE = /^(postgres(?:ql)?):\/\/(?:([^/?#]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/;
// One host entry: a name or IPv4 address, or a bracketed IPv6 address, then an optional port.
const HOST_ENTRY = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]@,]*)(?::(\d*))?$/;

const PARAMS_WE_READ = new Set(['target_session_attrs', 'connect_timeout']);

export function parseDatabaseUrl(url: string, role: DatabaseRole): DatabaseTarget {
  const m = URL_SHAPE.exec(url);
  if (!m) throw new DatabaseUrlError('must be a postgres:// URL (postgres://user:password@host1:5432,host2:5432/database)');
  const [, scheme, userinfo, hostlist = '', path = '', query = ''] = m;
  const entries = hostlist.split(',');
  const multi = entries.length > 1;
  const hosts: DatabaseHost[] = [];
  const params = new URLSearchParams(query);
  const passOn = new URLSearchParams([...params].filter(([k]) => !PARAMS_WE_READ.has(k)));
  const rest = `${path}${passOn.size ? `?${passOn.toString()}` : ''}`;
  for (const [i, entry] of entries.entries()) {
    const h = HOST_ENTRY.exec(entry);
    const where = multi ? `host ${i + 1} of ${entries.length} ("${entry}")` : `host "${entry}"`;
    if (!h) throw new DatabaseUrlError(`${where} is not host[:port]`);
    const [, name = '', port] = h;
    if (multi && !name) throw new DatabaseUrlError(`${where} has no host name`);
    if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535))
      throw new DatabaseUrlError(`${where} has an invalid port (1-65535)`);
    hosts.push({
      label: `${decodeURIComponent(name) || 'localhost'}:${port || 5432}`,
      url: `${scheme}://${userinfo !== undefined ? `${userinfo}@` : ''}${entry}${rest}`,
    });
  }

  const given = params.get('target_session_attrs');
  if (given !== null && !ATTRS.includes(given as TargetSessionAttrs)) throw new DatabaseUrlError(`target_session_attrs must be one of ${ATTRS.join(', ')}`);
  // The server writes on every request path: with several hosts, only a writable one will do (what a failover needs).
  const attrs = (given ?? (role === 'primary' && multi ? 'read-write' : 'any')) as TargetSessionAttrs;
  if (role === 'primary' && !['any', 'read-write', 'primary'].includes(attrs)) {
    throw new DatabaseUrlError(
      `target_session_attrs=${attrs} cannot be the primary database (the server writes); use read-write, or IDMS_DATABASE_READ_URL for replicas`,
    );
  }
  if (role === 'primary' && multi && attrs === 'any') {
    throw new DatabaseUrlError('target_session_attrs=any with several hosts could keep a standby after a failover; use read-write (the default) or primary');
  }
  return {
    hosts,
    attrs,
    connectTimeoutMs: seconds(params.get('connect_timeout'), 'connect_timeout', DEFAULT_CONNECT_TIMEOUT_MS),
    statementTimeoutMs: millis(params.get('statement_timeout'), 'statement_timeout', DEFAULT_STATEMENT_TIMEOUT_MS),
  };
}

function seconds(v: string | null, name: string, fallback: number): number {
  if (v === null) return fallback;
  if (!/^\d{1,6}$/.test(v)) throw new DatabaseUrlError(`${name} must be a whole number of seconds`);
  // libpq: 0 waits forever; below 2 s is taken as 2 s.
  return Number(v) === 0 ? 0 : Math.max(2, Number(v)) * 1000;
}

function millis(v: string | null, name: string, fallback: number): number {
  if (v === null) return fallback;
  if (!/^\d{1,9}$/.test(v)) throw new DatabaseUrlError(`${name} must be a whole number of milliseconds`);
  return Number(v);
}
