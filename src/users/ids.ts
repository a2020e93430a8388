// The one rule for identifiers (VAL user IDs, VAL service IDs, requester identities, client IDs): every edge
// (login form, provisioning APIs, CLI, import) canonicalises with it, so one ID is stored, compared and logged one way.

/** TS 33.434 A.2.1.2: `sub` (the VAL user ID) is at most 255 octets; the same bound holds for every ID we store. */
export const MAX_ID_BYTES = 255;

// Printable, no whitespace or control characters: IDs end up in tokens, logs, URLs and SQL. U+D800–U+DFFF are
// excluded here and lone surrogates again below: they cannot be encoded as UTF-8, and the driver would store
// each as U+FFFD, collapsing distinct IDs into one.
const ID_PATTERN = /^[\x21-\x7e\u00a0-\ud7ff\ue000-\uffff\u{10000}-\u{10ffff}]+$/u;
const LONE_SURROGATE = /\p{Cs}/u;

export type IdCheck = { ok: true; id: string } | { ok: false; reason: string };

/**
 * Canonical form of an ID: Unicode NFC (so the NFC and NFD spellings of one name are one ID), or the reason it is
 * not an ID. The reason never echoes the value (it may be a password typed into the wrong field).
 */
export function canonicalId(value: unknown): IdCheck {
  if (typeof value !== 'string' || value === '') return { ok: false, reason: 'must not be empty' };
  if (LONE_SURROGATE.test(value) || !ID_PATTERN.test(value)) {
    return { ok: false, reason: 'must be printable characters without spaces or control characters' };
  }
  const id = value.normalize('NFC');
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) return { ok: false, reason: `must be at most ${MAX_ID_BYTES} bytes in UTF-8` };
  return { ok: true, id };
}

export class InvalidIdError extends Error {
  readonly label: string;
  constructor(label: string, reason: string) {
    super(`invalid ${label}: ${reason}`);
    this.label = label;
  }
}

/** canonicalId for callers that want an exception (CLI, import); `label` names the ID in the message. */
export function parseId(label: string, value: unknown): string {
  const check = canonicalId(value);
  if (!check.ok) throw new InvalidIdError(label, check.reason);
  return check.id;
}

/**
 * Whether a free-text protocol value can be stored or logged as given: no NUL (PostgreSQL text cannot hold it)
 * and no lone surrogate (not encodable as UTF-8). Returns the reason it cannot, or undefined.
 */
export function unsafeTextReason(value: string): string | undefined {
  if (value.includes('\0')) return 'contains a NUL character';
  if (LONE_SURROGATE.test(value)) return 'contains an unpaired UTF-16 surrogate';
  return undefined;
}
