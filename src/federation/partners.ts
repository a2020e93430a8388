// Trusted partner S-IdMS: issuers, the public keys (JWKS or X.509 certificate) provisioned for them out of band
// (TS 33.180 clause 5.1.4.2), and the per-partner policy applied to their security tokens.
import crypto from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { canonicalId, unsafeTextReason } from '../users/ids.ts';

/** Signature algorithms accepted from partners: asymmetric only (never none, never HS*: RFC 8725 §3.1–3.2). */
export const PARTNER_ALGS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA', 'Ed25519'] as const;

/** The longest `exp - iat` accepted from a partner unless its policy says otherwise (seconds). */
export const DEFAULT_MAX_TOKEN_LIFETIME = 300;
/** Upper bound of `--max-token-lifetime`: security tokens are short-lived (TS 33.180 annex B.8). */
export const MAX_TOKEN_LIFETIME_LIMIT = 3600;

export type PartnerKeys = { jwks: JSONWebKeySet; certificate?: undefined } | { certificate: string; jwks?: undefined };

/**
 * What this domain accepts from one partner (stored in `partners.policy`). An absent list means no restriction:
 * any allowed algorithm, any client registered for the grant, every VAL service the user is provisioned for here.
 */
export type PartnerPolicy = {
  maxTokenLifetime: number;
  /** The partner's token endpoint URL: the home side accepts it as `resource` (TS 33.180 annex B.7.2). */
  tokenEndpoint?: string;
  algorithms?: string[];
  clients?: string[];
  services?: string[];
  /** Whether the partner may vouch for VAL users who have a record (credentials) in this domain; default no. */
  allowLocalUsers: boolean;
};

/** A change to a policy: a value sets it, null returns it to its default, undefined leaves it as it is. */
export type PolicyChange = {
  maxTokenLifetime?: number | null;
  tokenEndpoint?: string | null;
  algorithms?: string[] | null;
  clients?: string[] | null;
  services?: string[] | null;
  allowLocalUsers?: boolean | null;
};

export type Partner = {
  issuer: string;
  jwks: JSONWebKeySet | null;
  certificate: string | null;
  policy: PartnerPolicy;
  createdAt: Date;
};

export class InvalidPartnerError extends Error {}

const MAX_KEYS = 20;
const MAX_URL_LENGTH = 2048;
const MIN_RSA_BITS = 2048;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** A partner issuer identifier: an http(s) URL without query, fragment or credentials, compared as a plain string. */
export function parsePartnerIssuer(value: string | undefined, ownIssuer: string): string {
  if (!value) throw new InvalidPartnerError('missing partner issuer');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidPartnerError(`partner issuer "${value.slice(0, 80)}" is not a URL`);
  }
  if (
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.search ||
    url.hash ||
    url.username ||
    url.password ||
    value.length > MAX_URL_LENGTH ||
    unsafeTextReason(value)
  ) {
    throw new InvalidPartnerError('partner issuer must be an http(s) URL without query, fragment or credentials (its IDMS_ISSUER)');
  }
  if (value === ownIssuer) throw new InvalidPartnerError("partner issuer is this server's own issuer");
  return value;
}

/** Validates a public JWKS as handed over by `keys export`; refuses private or symmetric keys. */
export function parseJwks(text: string): JSONWebKeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new InvalidPartnerError('JWKS is not valid JSON');
  }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new InvalidPartnerError('JWKS must be an object with a non-empty "keys" array');
  if (keys.length > MAX_KEYS) throw new InvalidPartnerError(`JWKS has more than ${MAX_KEYS} keys`);
  const kids = new Set<string>();
  const clean = keys.map((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw new InvalidPartnerError(`JWKS key ${i} is not an object`);
    const jwk = raw as JWK;
    const label = `JWKS key ${jwk.kid ?? i}`;
    if (jwk.kty === 'oct') throw new InvalidPartnerError(`${label} is a symmetric key; partners sign with asymmetric keys`);
    if (PRIVATE_MEMBERS.some((m) => m in jwk)) throw new InvalidPartnerError(`${label} contains private key material; hand over the public JWKS only`);
    if (jwk.use !== undefined && jwk.use !== 'sig') throw new InvalidPartnerError(`${label} is not a signature key (use "${jwk.use}")`);
    if (jwk.alg !== undefined && !(PARTNER_ALGS as readonly string[]).includes(jwk.alg))
      throw new InvalidPartnerError(`${label} has algorithm ${jwk.alg}, not one of ${PARTNER_ALGS.join(', ')}`);
    if (jwk.kid !== undefined) {
      if (typeof jwk.kid !== 'string' || kids.has(jwk.kid)) throw new InvalidPartnerError(`${label}: kid must be a unique string`);
      kids.add(jwk.kid);
    }
    let key: crypto.KeyObject;
    try {
      key = crypto.createPublicKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' });
    } catch (err) {
      throw new InvalidPartnerError(`${label} is not a valid public key: ${(err as Error).message}`);
    }
    checkKeyStrength(key, label);
    return jwk;
  });
  return { keys: clean };
}

/** Validates one PEM X.509 certificate carrying the partner's signing key; returns it normalised. */
export function parseCertificate(pem: string, now = new Date()): string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) throw new InvalidPartnerError(`expected exactly one PEM certificate, found ${blocks.length}`);
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(blocks[0]!);
  } catch (err) {
    throw new InvalidPartnerError(`certificate cannot be parsed: ${(err as Error).message}`);
  }
  if (cert.validToDate.getTime() <= now.getTime()) throw new InvalidPartnerError(`certificate expired on ${cert.validToDate.toISOString()}`);
  checkKeyStrength(cert.publicKey, 'certificate key');
  return cert.toString().trim() + '\n';
}

function checkKeyStrength(key: crypto.KeyObject, label: string): void {
  const type = key.asymmetricKeyType;
  if (type === 'rsa' || type === 'rsa-pss') {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) throw new InvalidPartnerError(`${label}: RSA keys need at least ${MIN_RSA_BITS} bits`);
    return;
  }
  if (type === 'ec' || type === 'ed25519') return;
  throw new InvalidPartnerError(`${label}: unsupported key type ${type ?? 'unknown'} (EC, RSA or Ed25519)`);
}

/** Adds a partner, or replaces its keys (re-provisioning after the partner rotated its keys); `change` edits its policy. */
export async function addPartner(db: Db, issuer: string, keys: PartnerKeys, change: PolicyChange = {}): Promise<'added' | 'updated'> {
  const { set, unset } = storedChange(change);
  // One statement; xmax = 0 tells a fresh insert from an update of an existing row. A re-add keeps the policy
  // members it does not change (re-provisioning keys after a rotation does not reset the policy).
  const res = await explainUniqueTokenEndpoint(
    db.raw(
      `insert into partners (issuer, jwks, certificate, policy) values (?, ?::jsonb, ?, ?::jsonb)
       on conflict (issuer) do update set jwks = excluded.jwks, certificate = excluded.certificate, policy = (partners.policy || ?::jsonb) - ?::text[]
       returning (xmax = 0) as inserted`,
      [issuer, keys.jwks ? JSON.stringify(keys.jwks) : null, keys.certificate ?? null, JSON.stringify(set), JSON.stringify(set), unset],
    ),
    change,
  );
  // Serving processes drop their cached partners when they hear the trigger's NOTIFY (migration 202611231330).
  return (res.rows as { inserted: boolean }[])[0]?.inserted ? 'added' : 'updated';
}

/** Edits an existing partner's policy, and its keys when given; undefined when there is no such partner. */
export async function updatePartner(db: Db, issuer: string, keys: PartnerKeys | undefined, change: PolicyChange): Promise<Partner | undefined> {
  const { set, unset } = storedChange(change);
  const setKeys = keys ? ', jwks = ?::jsonb, certificate = ?' : '';
  const keyValues = keys ? [keys.jwks ? JSON.stringify(keys.jwks) : null, keys.certificate ?? null] : [];
  const res = await explainUniqueTokenEndpoint(
    db.raw(`update partners set policy = (policy || ?::jsonb) - ?::text[]${setKeys} where issuer = ? returning *`, [
      JSON.stringify(set),
      unset,
      ...keyValues,
      issuer,
    ]),
    change,
  );
  const row = (res.rows as PartnerRow[])[0];
  return row ? toPartner(row) : undefined;
}

/** The unique index on the token endpoint (migration 202611291030), as an operator-facing error. */
async function explainUniqueTokenEndpoint<T>(query: PromiseLike<T>, change: PolicyChange): Promise<T> {
  try {
    return await query;
  } catch (err) {
    const e = err as { code?: string; constraint?: string };
    if (e.code === '23505' && e.constraint === 'partners_token_endpoint_idx') {
      throw new InvalidPartnerError(`token endpoint ${change.tokenEndpoint} is already registered for another partner`);
    }
    throw err;
  }
}

/** `caches`: the serving process's (a partner's token at every JWT-bearer grant), NO_CACHE for the operator's `partner show`. */
export async function findPartner(db: Db, caches: Caches, issuer: string): Promise<Partner | undefined> {
  // A value that cannot be an issuer (NUL, which PostgreSQL text cannot hold; over-long) names no partner and never reaches SQL.
  if (issuer.length > MAX_URL_LENGTH || unsafeTextReason(issuer)) return undefined;
  // Dropped from the caches on any change by any instance, so `partner remove` still takes effect at once.
  return caches.read('partners', issuer, async () => {
    const row = await db('partners').where({ issuer }).first();
    return row ? toPartner(row) : undefined;
  });
}

/** The partner whose policy registers `url` as its token endpoint (TS 33.180 annex B.7.2: `resource` = that URL). */
export async function findPartnerByTokenEndpoint(db: Db, caches: Caches, url: string): Promise<Partner | undefined> {
  if (url.length > MAX_URL_LENGTH || unsafeTextReason(url)) return undefined;
  // Issuers are URLs and contain no space, so this key cannot collide with an issuer's.
  return caches.read('partners', `token_endpoint ${url}`, async () => {
    const row = await db('partners').whereRaw("policy->>'token_endpoint' = ?", [url]).first(); // partners_token_endpoint_idx
    return row ? toPartner(row) : undefined;
  });
}

/** The partner a home-side token exchange names: by its issuer, or by its registered token endpoint URL. */
export async function findPartnerByTarget(db: Db, caches: Caches, target: string): Promise<Partner | undefined> {
  return (await findPartner(db, caches, target)) ?? (await findPartnerByTokenEndpoint(db, caches, target));
}

export async function listPartners(db: Db): Promise<Partner[]> {
  return (await db('partners').select('*').orderBy('issuer')).map(toPartner);
}

export async function removePartner(db: Db, issuer: string): Promise<boolean> {
  return (await db('partners').where({ issuer }).delete()) > 0;
}

/** One line describing a partner's keys, for `partner list`. */
export function describePartnerKeys(partner: Pick<Partner, 'jwks' | 'certificate'>): string {
  if (partner.jwks) return `jwks ${partner.jwks.keys.map((k) => `${k.kid ?? '(no kid)'}${k.alg ? ` ${k.alg}` : ''}`).join(', ')}`;
  if (partner.certificate) {
    const cert = new crypto.X509Certificate(partner.certificate);
    return `certificate ${cert.subject.replace(/\n/g, ', ')} (valid until ${cert.validToDate.toISOString()})`;
  }
  return 'no keys';
}

/** The policy as `partner show` prints it, one `name: value` line each, defaults said as such. */
export function describePartnerPolicy(policy: PartnerPolicy): string[] {
  const list = (values: string[] | undefined, otherwise: string) => (values ? values.join(', ') : otherwise);
  return [
    `max token lifetime: ${policy.maxTokenLifetime} s${policy.maxTokenLifetime === DEFAULT_MAX_TOKEN_LIFETIME ? ' (default)' : ''}`,
    `token endpoint: ${policy.tokenEndpoint ?? '(none: the home side names this partner by its issuer only)'}`,
    `algorithms: ${list(policy.algorithms, `any of ${PARTNER_ALGS.join(', ')} (default)`)}`,
    `clients: ${list(policy.clients, 'any client registered for the grant (default)')}`,
    `services: ${list(policy.services, 'every VAL service the user is provisioned for here (default)')}`,
    `local users: ${policy.allowLocalUsers ? 'allowed (the partner may vouch for users with credentials here)' : 'refused (default)'}`,
  ];
}

/** Policy options as the operator typed them (CLI strings); "" returns an option to its default. */
export type PolicyOptions = {
  maxTokenLifetime?: string;
  tokenEndpoint?: string;
  alg?: string[];
  clients?: string;
  services?: string;
  allowLocalUsers?: boolean;
};

/** Validates policy options into a change; throws InvalidPartnerError with the reason. */
export function parsePolicyOptions(options: PolicyOptions, ownIssuer: string): PolicyChange {
  const change: PolicyChange = {};
  if (options.maxTokenLifetime !== undefined) {
    const v = options.maxTokenLifetime;
    if (v === '') change.maxTokenLifetime = null;
    else if (!/^[0-9]{1,5}$/.test(v) || Number(v) < 1 || Number(v) > MAX_TOKEN_LIFETIME_LIMIT) {
      throw new InvalidPartnerError(`--max-token-lifetime must be a number of seconds from 1 to ${MAX_TOKEN_LIFETIME_LIMIT}`);
    } else change.maxTokenLifetime = Number(v);
  }
  if (options.tokenEndpoint !== undefined) {
    change.tokenEndpoint = options.tokenEndpoint === '' ? null : parseTokenEndpoint(options.tokenEndpoint, ownIssuer);
  }
  if (options.alg !== undefined) {
    const algs = splitList(options.alg.join(','));
    const unknown = algs.filter((a) => !(PARTNER_ALGS as readonly string[]).includes(a));
    if (unknown.length) throw new InvalidPartnerError(`--alg ${unknown.join(', ')} is not one of ${PARTNER_ALGS.join(', ')}`);
    change.algorithms = algs.length ? algs : null;
  }
  if (options.clients !== undefined) change.clients = idList(options.clients, 'client ID');
  if (options.services !== undefined) change.services = idList(options.services, 'VAL service ID');
  if (options.allowLocalUsers !== undefined) change.allowLocalUsers = options.allowLocalUsers;
  return change;
}

function parseTokenEndpoint(value: string, ownIssuer: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidPartnerError(`--token-endpoint "${value.slice(0, 80)}" is not a URL`);
  }
  if (
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.hash ||
    url.username ||
    url.password ||
    value.length > MAX_URL_LENGTH ||
    unsafeTextReason(value)
  ) {
    throw new InvalidPartnerError("--token-endpoint must be an http(s) URL without fragment or credentials (the partner's token endpoint)");
  }
  if (value === ownIssuer || value.startsWith(`${ownIssuer.replace(/\/+$/, '')}/`))
    throw new InvalidPartnerError('--token-endpoint is an endpoint of this server');
  return value;
}

function splitList(value: string): string[] {
  return [
    ...new Set(
      value
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean),
    ),
  ];
}

function idList(value: string, label: string): string[] | null {
  const ids = splitList(value).map((v) => {
    const check = canonicalId(v);
    if (!check.ok) throw new InvalidPartnerError(`invalid ${label} in list: ${check.reason}`);
    return check.id;
  });
  return ids.length ? [...new Set(ids)] : null;
}

type StoredPolicy = {
  max_token_lifetime?: unknown;
  token_endpoint?: unknown;
  algorithms?: unknown;
  clients?: unknown;
  services?: unknown;
  allow_local_users?: unknown;
};

const STORED_NAMES = {
  maxTokenLifetime: 'max_token_lifetime',
  tokenEndpoint: 'token_endpoint',
  algorithms: 'algorithms',
  clients: 'clients',
  services: 'services',
  allowLocalUsers: 'allow_local_users',
} as const satisfies Record<keyof PolicyChange, keyof StoredPolicy>;

/** A change as jsonb to merge (`||`) and member names to remove (`-`), so it applies in the statement that writes. */
function storedChange(change: PolicyChange): { set: Record<string, unknown>; unset: string } {
  const set: Record<string, unknown> = {};
  const unset: string[] = [];
  for (const [name, stored] of Object.entries(STORED_NAMES) as [keyof PolicyChange, string][]) {
    const value = change[name];
    if (value === null) unset.push(stored);
    else if (value !== undefined) set[stored] = value;
  }
  // A PostgreSQL array literal (knex would expand a JS array binding into a list); the names are our constants.
  return { set, unset: `{${unset.join(',')}}` };
}

/** The stored jsonb as a policy; a member of the wrong shape (edited by hand) counts as absent, i.e. its default. */
function toPolicy(stored: StoredPolicy | null): PartnerPolicy {
  const p = stored ?? {};
  const strings = (v: unknown) => (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);
  const lifetime = p.max_token_lifetime;
  const algorithms = strings(p.algorithms);
  const clients = strings(p.clients);
  const services = strings(p.services);
  return {
    maxTokenLifetime: Number.isInteger(lifetime) && (lifetime as number) > 0 ? (lifetime as number) : DEFAULT_MAX_TOKEN_LIFETIME,
    ...(typeof p.token_endpoint === 'string' ? { tokenEndpoint: p.token_endpoint } : {}),
    ...(algorithms ? { algorithms } : {}),
    ...(clients ? { clients } : {}),
    ...(services ? { services } : {}),
    allowLocalUsers: p.allow_local_users === true,
  };
}

type PartnerRow = { issuer: string; jwks: JSONWebKeySet | null; certificate: string | null; policy: StoredPolicy | null; created_at: Date };

function toPartner(row: PartnerRow): Partner {
  return { issuer: row.issuer, jwks: row.jwks, certificate: row.certificate, policy: toPolicy(row.policy), createdAt: row.created_at };
}
