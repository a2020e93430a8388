// Reads and validates the IDMS_* environment once; the rest of the code receives the frozen Config.
import path from 'node:path';
import os from 'node:os';
import { z } from 'zod';
import { LOG_LEVELS, type LogFormat, type LogLevel } from '../observability/logger.ts';
import { DatabaseUrlError, parseDatabaseUrl, type DatabaseRole } from '../db/hosts.ts';

const seconds = (name: string, fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 10 * 365 * 86400) {
        ctx.addIssue({ code: 'custom', message: `${name} must be a whole number of seconds (1 to 315360000), got "${v}"` });
        return z.NEVER;
      }
      return Number(v);
    });

// libpq URL, one host or several (postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write), checked here so a
// typo stops start-up with one line instead of failing at the first connection.
const databaseUrl = (role: DatabaseRole) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!v) return undefined;
      try {
        parseDatabaseUrl(v, role);
      } catch (err) {
        if (!(err instanceof DatabaseUrlError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message });
        return z.NEVER;
      }
      return v;
    });

const flag = z
  .enum(['', '0', '1', 'true', 'false'], { message: 'must be 1/0 or true/false' })
  .optional()
  .transform((v) => v === '1' || v === 'true');

const schema = z.object({
  IDMS_LOG_LEVEL: z
    .string()
    .optional()
    .transform((v) => v || 'info')
    .pipe(z.enum(LOG_LEVELS as [LogLevel, ...LogLevel[]], { message: `must be one of ${LOG_LEVELS.join(', ')}` })),
  // Unset: JSON, or short text lines when stderr is a terminal (decided by `serve`).
  IDMS_LOG_FORMAT: z
    .enum(['', 'json', 'pretty'], { message: 'must be json or pretty' })
    .optional()
    .transform((v) => (v ? (v as LogFormat) : undefined)),
  IDMS_METRICS_PORT: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) {
        ctx.addIssue({ code: 'custom', message: `must be a port number 1-65535, got "${v}"` });
        return z.NEVER;
      }
      return Number(v);
    }),
  IDMS_METRICS_HOST: z
    .string()
    .optional()
    .transform((v) => v || '127.0.0.1'),
  NODE_ENV: z.string().optional(),
  IDMS_ISSUER: z
    .string()
    .optional()
    .transform((v) => v || 'http://localhost:3000')
    .pipe(
      z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).refine((u) => {
        const url = new URL(u);
        return !url.search && !url.hash;
      }, 'must not have a query or fragment'),
    )
    .transform((u) => u.replace(/\/$/, '')),
  // TS 29.501 clause 4.4.1 apiRoot ("{apiRoot}/ss-ipp/v1"): scheme, authority and an optional deployment prefix.
  IDMS_API_ROOT: z
    .string()
    .optional()
    .transform((v) => v || undefined)
    .pipe(
      z
        .url({ protocol: /^https?$/, message: 'must be an http(s) URL' })
        .refine((u) => {
          const url = new URL(u);
          return !url.search && !url.hash;
        }, 'must not have a query or fragment')
        .transform((u) => u.replace(/\/+$/, ''))
        .optional(),
    ),
  IDMS_HOST: z
    .string()
    .optional()
    .transform((v) => v || '127.0.0.1'),
  IDMS_PORT: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 3000;
      if (!/^\d+$/.test(v) || Number(v) > 65535) {
        ctx.addIssue({ code: 'custom', message: `must be a port number 0-65535, got "${v}"` });
        return z.NEVER;
      }
      return Number(v);
    }),
  IDMS_DATABASE_URL: databaseUrl('primary'),
  // Optional read replicas (docs/ha.md): one or more hosts, libpq target_session_attrs honoured.
  IDMS_DATABASE_READ_URL: databaseUrl('read'),
  IDMS_DATA_DIR: z
    .string()
    .optional()
    .transform((v) => path.resolve(v || './data')),
  IDMS_SECRET: z
    .string()
    .optional()
    .transform((v) => v || undefined)
    .pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  IDMS_TLS_CERT: z
    .string()
    .optional()
    .transform((v) => v || undefined),
  IDMS_TLS_KEY: z
    .string()
    .optional()
    .transform((v) => v || undefined),
  IDMS_TRUST_PROXY: flag,
  IDMS_ACCESS_TOKEN_TTL: seconds('IDMS_ACCESS_TOKEN_TTL', 300),
  IDMS_ID_TOKEN_TTL: seconds('IDMS_ID_TOKEN_TTL', 3600),
  IDMS_REFRESH_TOKEN_TTL: seconds('IDMS_REFRESH_TOKEN_TTL', 14 * 86400),
  IDMS_SECURITY_TOKEN_TTL: seconds('IDMS_SECURITY_TOKEN_TTL', 60),
  // Shown on every page (title, heading line, logout prompt): who runs this S-IdMS. Plain text, one line.
  IDMS_DISPLAY_NAME: z
    .string()
    .optional()
    .transform((v) => v?.trim() || 'SEAL Identity Management')
    .pipe(
      z
        .string()
        .max(100, 'must be at most 100 characters')
        .refine((v) => !/[\p{Cc}\p{Cs}]/u.test(v), 'must be one line of text'),
    ),
  // Where the signed-out page (and the error pages) send a person who came without a client to return to.
  IDMS_HOME_URL: z
    .string()
    .optional()
    .transform((v) => v || undefined)
    .pipe(z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).optional()),
  IDMS_DEFAULT_RESOURCE: z
    .string()
    .optional()
    .transform((v) => v || 'urn:3gpp:seal')
    .pipe(z.string().refine(isAbsoluteUri, 'must be an absolute URI without a fragment')),
  IDMS_WORKERS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 256) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number from 1 to 256, got "${v}"` });
        return z.NEVER;
      }
      return Number(v);
    }),
  IDMS_DB_POOL_MAX: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 10;
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1000) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number from 1 to 1000, got "${v}"` });
        return z.NEVER;
      }
      return Number(v);
    }),
});

export type Config = Readonly<{
  production: boolean;
  issuer: string;
  host: string;
  port: number;
  databaseUrl: string | undefined;
  /** Read replicas for reads that may lag (IDMS_DATABASE_READ_URL); undefined: those reads go to the primary. */
  databaseReadUrl: string | undefined;
  dataDir: string;
  secret: string | undefined;
  tls: Readonly<{ cert: string; key: string }> | undefined;
  trustProxy: boolean;
  ttl: Readonly<{ accessToken: number; idToken: number; refreshToken: number; securityToken: number }>;
  defaultResource: string;
  /** apiRoot of the 3GPP APIs (IDMS_API_ROOT; default the issuer's origin), without a trailing slash. */
  apiRoot: string;
  workers: number;
  logLevel: LogLevel;
  /** undefined: decided by the process (text on a terminal, JSON otherwise). */
  logFormat: LogFormat | undefined;
  /** Prometheus listener; undefined when IDMS_METRICS_PORT is unset (metrics are never on the public listener). */
  metrics: Readonly<{ host: string; port: number }> | undefined;
  /** PostgreSQL connections per serving process (each cluster worker has its own pool). */
  dbPoolMax: number;
  /** The operator's name on the pages (IDMS_DISPLAY_NAME). */
  displayName: string;
  /** The way back on the signed-out page when no client asked for one (IDMS_HOME_URL); undefined: none configured. */
  homeUrl: string | undefined;
}>;

export class ConfigError extends Error {}

export function isAbsoluteUri(value: string): boolean {
  try {
    const url = new URL(value);
    return !url.hash && value.length <= 2048;
  } catch {
    return false;
  }
}

// One clear line naming the variable: the operator fixes it and starts again.
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid ${String(issue.path[0] ?? 'configuration')}: ${issue.message}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  if ((e.IDMS_TLS_CERT === undefined) !== (e.IDMS_TLS_KEY === undefined)) {
    throw new ConfigError('invalid IDMS_TLS_CERT / IDMS_TLS_KEY: set both or neither');
  }
  if (production && !e.IDMS_SECRET) {
    throw new ConfigError('invalid IDMS_SECRET: required when NODE_ENV=production (at least 32 characters)');
  }
  if (!e.IDMS_TLS_CERT && !e.IDMS_TRUST_PROXY && !isLoopback(e.IDMS_HOST)) {
    throw new ConfigError(
      `invalid IDMS_HOST: ${e.IDMS_HOST} is not a loopback address; serve TLS (IDMS_TLS_CERT/IDMS_TLS_KEY) or set IDMS_TRUST_PROXY=1 behind a TLS-terminating proxy`,
    );
  }
  if (e.IDMS_METRICS_PORT !== undefined && e.IDMS_METRICS_PORT === e.IDMS_PORT) {
    throw new ConfigError('invalid IDMS_METRICS_PORT: must differ from IDMS_PORT (metrics are never served on the public listener)');
  }
  return Object.freeze({
    production,
    issuer: e.IDMS_ISSUER,
    host: e.IDMS_HOST,
    port: e.IDMS_PORT,
    databaseUrl: e.IDMS_DATABASE_URL,
    databaseReadUrl: e.IDMS_DATABASE_READ_URL,
    dataDir: e.IDMS_DATA_DIR,
    secret: e.IDMS_SECRET,
    tls: e.IDMS_TLS_CERT && e.IDMS_TLS_KEY ? Object.freeze({ cert: e.IDMS_TLS_CERT, key: e.IDMS_TLS_KEY }) : undefined,
    trustProxy: e.IDMS_TRUST_PROXY,
    ttl: Object.freeze({
      accessToken: e.IDMS_ACCESS_TOKEN_TTL,
      idToken: e.IDMS_ID_TOKEN_TTL,
      refreshToken: e.IDMS_REFRESH_TOKEN_TTL,
      securityToken: e.IDMS_SECURITY_TOKEN_TTL,
    }),
    defaultResource: e.IDMS_DEFAULT_RESOURCE,
    apiRoot: e.IDMS_API_ROOT ?? new URL(e.IDMS_ISSUER).origin,
    workers: e.IDMS_WORKERS ?? (production ? os.availableParallelism() : 1),
    logLevel: e.IDMS_LOG_LEVEL,
    logFormat: e.IDMS_LOG_FORMAT,
    metrics: e.IDMS_METRICS_PORT === undefined ? undefined : Object.freeze({ host: e.IDMS_METRICS_HOST, port: e.IDMS_METRICS_PORT }),
    dbPoolMax: e.IDMS_DB_POOL_MAX,
    displayName: e.IDMS_DISPLAY_NAME,
    homeUrl: e.IDMS_HOME_URL,
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
