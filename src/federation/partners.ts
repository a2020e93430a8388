// Trusted partner S-IdMS: issuers and the public keys (JWKS or X.509 certificate) provisioned for them out of band.
import crypto from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';
import { cached, tableChanged } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';

/** Signature algorithms accepted from partners: asymmetric only (never none, never HS*: RFC 8725 §3.1–3.2). */
export const PARTNER_ALGS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA', 'Ed25519'] as const;

export type PartnerKeys = { jwks: JSONWebKeySet; certificate?: undefined } | { certificate: string; jwks?: undefined };

export type Partner = {
  issuer: string;
  jwks: JSONWebKeySet | null;
  certificate: string | null;
  policy: Record<string, unknown>;
  createdAt: Date;
};

export class InvalidPartnerError extends Error {}

const MAX_KEYS = 20;
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
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash || url.username || url.password || value.length > 2048) {
    throw new InvalidPartnerError('partner issuer must be an http(s) URL without query, fragment or credentials (its IDMS_ISSUER)');
  }
  if (value === ownIssuer) throw new InvalidPartnerError('partner issuer is this server\'s own issuer');
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
    if (jwk.alg !== undefined && !(PARTNER_ALGS as readonly string[]).includes(jwk.alg)) throw new InvalidPartnerError(`${label} has algorithm ${jwk.alg}, not one of ${PARTNER_ALGS.join(', ')}`);
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

/** Adds a partner or replaces its keys (re-provisioning after the partner rotated its keys). */
export async function addPartner(db: Db, issuer: string, keys: PartnerKeys): Promise<'added' | 'updated'> {
  // One statement; xmax = 0 tells a fresh insert from an update of an existing row.
  const res = await db.raw(
    `insert into partners (issuer, jwks, certificate) values (?, ?::jsonb, ?)
     on conflict (issuer) do update set jwks = excluded.jwks, certificate = excluded.certificate
     returning (xmax = 0) as inserted`,
    [issuer, keys.jwks ? JSON.stringify(keys.jwks) : null, keys.certificate ?? null],
  );
  tableChanged('partners');
  return (res.rows as { inserted: boolean }[])[0]?.inserted ? 'added' : 'updated';
}

export async function findPartner(db: Db, issuer: string): Promise<Partner | undefined> {
  // Cached per process and dropped on any change by any instance, so `partner remove` still takes effect at once.
  return cached(db, 'partners', issuer, async () => {
    const row = await db('partners').where({ issuer }).first();
    return row ? toPartner(row) : undefined;
  });
}

export async function listPartners(db: Db): Promise<Partner[]> {
  return (await db('partners').select('*').orderBy('issuer')).map(toPartner);
}

export async function removePartner(db: Db, issuer: string): Promise<boolean> {
  const removed = (await db('partners').where({ issuer }).delete()) > 0;
  tableChanged('partners');
  return removed;
}

/** One line describing a partner's keys, for `partner list`. */
export function describePartnerKeys(partner: Partner): string {
  if (partner.jwks) return `jwks ${partner.jwks.keys.map((k) => `${k.kid ?? '(no kid)'}${k.alg ? ` ${k.alg}` : ''}`).join(', ')}`;
  if (partner.certificate) {
    const cert = new crypto.X509Certificate(partner.certificate);
    return `certificate ${cert.subject.replace(/\n/g, ', ')} (valid until ${cert.validToDate.toISOString()})`;
  }
  return 'no keys';
}

type PartnerRow = { issuer: string; jwks: JSONWebKeySet | null; certificate: string | null; policy: Record<string, unknown>; created_at: Date };

function toPartner(row: PartnerRow): Partner {
  return { issuer: row.issuer, jwks: row.jwks, certificate: row.certificate, policy: row.policy, createdAt: row.created_at };
}
