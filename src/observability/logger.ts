// Structured logs (pino, one JSON object per line) with secrets redacted before anything is written.
import { Writable } from 'node:stream';
import pino from 'pino';

export type Logger = pino.Logger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'json' | 'pretty';

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

// Field names that carry credentials anywhere in a logged object: passwords, OAuth artifacts (RFC 6749 §4.1.2
// codes, §1.4-1.5 tokens, RFC 7636 verifiers, RFC 7523 assertions, RFC 8693 subject/actor tokens), client
// secrets, and HTTP credentials (Authorization, Cookie, Set-Cookie). Matched at the top level and two levels
// down (e.g. req.headers.authorization, params.client_secret), which is as deep as our log objects go.
const SECRET_FIELDS = [
  'password',
  'password_hash',
  'passwordHash',
  'client_secret',
  'clientSecret',
  'secret',
  'code',
  'code_verifier',
  'access_token',
  'refresh_token',
  'id_token',
  'token',
  'assertion',
  'client_assertion',
  'subject_token',
  'actor_token',
  'authorization',
  'cookie',
  '"set-cookie"',
];

export const REDACTED_PATHS: readonly string[] = SECRET_FIELDS.flatMap((f) => {
  const step = f.startsWith('"') ? `[${f}]` : `.${f}`;
  return [step.startsWith('.') ? f : step, `*${step}`, `*.*${step}`];
});

export type LoggerOptions = {
  level?: LogLevel;
  /** Where the lines go (tests inject a stream); defaults to stderr. */
  destination?: NodeJS.WritableStream;
  /** 'pretty' turns each line into short human-readable text (for a terminal); the redaction is the same. */
  format?: LogFormat;
};

export function createLogger(options: LoggerOptions = {}): Logger {
  const out = options.destination ?? process.stderr;
  const destination = options.format === 'pretty' ? prettyStream(out) : out;
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Errors keep their type, message and stack; a system error code (ECONNREFUSED, 23505) is kept as errorCode
      // because `code` is a redacted name (authorization codes).
      serializers: { err: serializeError },
    },
    destination,
  );
}

/** A logger that drops everything (tests, library use without a logger). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const out: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.errorCode = code;
  if (err.cause !== undefined) out.cause = serializeError(err.cause);
  return out;
}

// `12:03:04.567 INFO  request method=GET path=/healthz status=200 …`: the JSON line after redaction, reshaped.
function prettyStream(out: NodeJS.WritableStream): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        out.write(prettyLine(pending.slice(0, nl)) + '\n');
        pending = pending.slice(nl + 1);
      }
      done();
    },
  });
}

function prettyLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, msg, pid: _pid, hostname: _hostname, err, ...fields } = entry;
  const clock = typeof time === 'string' ? time.slice(11, 23) : '';
  const extras = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const stack = err && typeof err === 'object' && 'stack' in err ? `\n${String((err as { stack: unknown }).stack)}` : '';
  return `${clock} ${String(level).toUpperCase().padEnd(5)} ${String(msg ?? '')}${extras.length ? ' ' + extras.join(' ') : ''}${stack}`;
}
