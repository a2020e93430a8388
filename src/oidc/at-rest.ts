// What oidc-provider's records look like in the database: no column holds a usable bearer value or client secret.
//
// A leaked backup must not hand out refresh tokens, codes, sessions or VAL servers' credentials (issue 10 item 5).
// - Records whose id is a bearer value (every model but Client and Grant) are keyed by HMAC-SHA256 of the id under a
//   key derived from IDMS_SECRET; the id (`jti`) is not kept in the payload but restored from the presented value.
// - Bearer values oidc-provider copies into other payloads (the session cookie value and the interaction's own URL in
//   interactions, device codes, user codes, PAR ids) are sealed (AES-256-GCM under the key-encryption key) and opened on
//   read, so oidc-provider sees exactly what it stored. Only low-volume records carry them (one per login), which keeps
//   the number of encryptions under one key far below GCM's random-nonce limit.
// - Client secrets are kept as an HMAC, compared by hashing the presented secret; a client that needs the secret
//   itself as an HMAC or encryption key (client_secret_jwt, HS* or symmetric encryption algorithms) has it sealed.
import crypto from 'node:crypto';
import type { AdapterPayload, ClientMetadata } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Secrets } from '../config/secret.ts';

export type AtRestKeys = Readonly<{ hmacKey: crypto.KeyObject; kek: crypto.KeyObject }>;

/**
 * The keys as KeyObjects, made once: Node turns a Buffer key into a KeyObject at every createHmac/createCipheriv
 * (measured on Node 24: an HMAC 13-17 µs with a Buffer key, 1.7 µs with a KeyObject; an AES-GCM seal 21-34 µs against
 * 6-8 µs), and the token endpoint hashes a client secret or a record id on every request (issue 16).
 */
export function atRestKeys(secrets: Pick<Secrets, 'atRestKey' | 'keyEncryptionKey'>): AtRestKeys {
  return Object.freeze({ hmacKey: crypto.createSecretKey(secrets.atRestKey), kek: crypto.createSecretKey(secrets.keyEncryptionKey) });
}

/** Models whose id is no credential: clients are looked up and listed by client_id, grant ids are accepted by no endpoint. */
const PLAIN_KINDS: ReadonlySet<string> = new Set(['Client', 'Grant']);

/** True for a model whose id is a bearer value (a new oidc-provider model is one unless listed in PLAIN_KINDS). */
export function hasBearerId(kind: string): boolean {
  return !PLAIN_KINDS.has(kind);
}

/** The stored key of a bearer value (record id, user code). */
export function storageKey(keys: AtRestKeys, value: string): string {
  return crypto.createHmac('sha256', keys.hmacKey).update(value).digest('base64url');
}

const SEALED = 'enc:';

function seal(keys: AtRestKeys, aad: string, value: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', keys.kek, iv);
  cipher.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return SEALED + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
}

function open(keys: AtRestKeys, aad: string, sealed: string): string {
  const raw = Buffer.from(sealed.slice(SEALED.length), 'base64url');
  const decipher = crypto.createDecipheriv('aes-256-gcm', keys.kek, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(raw.subarray(12, 28));
  try {
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    throw new Error(`a sealed ${aad} cannot be decrypted: IDMS_SECRET differs from the one it was stored with`);
  }
}

const isSealed = (v: unknown): v is string => typeof v === 'string' && v.startsWith(SEALED);

// Bearer values oidc-provider 9 copies into payloads: Interaction.returnTo (its own URL, with its uid),
// Interaction.session.cookie (the session cookie value), Interaction.deviceCode / parJti (the device code or pushed
// request it continues), DeviceCode.userCode.
const TOP_FIELDS = ['returnTo', 'deviceCode', 'parJti', 'userCode'] as const;

type Payload = AdapterPayload & Record<string, unknown>;

/** The stored form of a bearer-id record's payload. */
export function sealPayload(keys: AtRestKeys, kind: string, payload: AdapterPayload): Payload {
  const out: Payload = { ...payload };
  // A record found by something other than its id (sessions by uid, device codes by user code) keeps its id sealed,
  // since nothing presented can restore it; every other record drops it.
  if (typeof out.jti === 'string' && (out.uid !== undefined || out.userCode !== undefined)) out.jti = seal(keys, `${kind}.jti`, out.jti);
  else delete out.jti;
  for (const field of TOP_FIELDS) {
    const v = out[field];
    if (typeof v === 'string' && !isSealed(v)) out[field] = seal(keys, `${kind}.${field}`, v);
  }
  const session = out.session as Record<string, unknown> | undefined;
  if (session && typeof session.cookie === 'string' && !isSealed(session.cookie))
    out.session = { ...session, cookie: seal(keys, `${kind}.session.cookie`, session.cookie) };
  return out;
}

/** oidc-provider's payload from the stored one; `id` is the presented id when the record was found by it. */
export function openPayload(keys: AtRestKeys, kind: string, stored: Payload, id?: string): Payload {
  if (id !== undefined) stored.jti = id;
  else if (isSealed(stored.jti)) stored.jti = open(keys, `${kind}.jti`, stored.jti);
  for (const field of TOP_FIELDS) {
    const v = stored[field];
    if (isSealed(v)) stored[field] = open(keys, `${kind}.${field}`, v);
  }
  const session = stored.session as Record<string, unknown> | undefined;
  if (session && isSealed(session.cookie)) session.cookie = open(keys, `${kind}.session.cookie`, session.cookie);
  return stored;
}

// In memory only: what oidc-provider holds as client_secret for a hashed secret. Not a usable secret (the presented
// one is hashed and compared, see compareHashedClientSecrets); clientMetadata refuses secrets that start with it.
export const HASHED_SECRET_PREFIX = '$hmac-sha256$';

function clientSecretHash(keys: AtRestKeys, clientId: string, secret: string): string {
  // Bound to the client: one client's stored hash is worth nothing for another. client_id cannot hold NUL (PostgreSQL text).
  return crypto.createHmac('sha256', keys.hmacKey).update(`client_secret\0${clientId}\0${secret}`).digest('base64url');
}

const HMAC_ALG_FIELDS = [
  'token_endpoint_auth_signing_alg',
  'id_token_signed_response_alg',
  'userinfo_signed_response_alg',
  'introspection_signed_response_alg',
  'authorization_signed_response_alg',
  'request_object_signing_alg',
] as const;
const ENCRYPTION_ALG_FIELDS = [
  'id_token_encrypted_response_alg',
  'userinfo_encrypted_response_alg',
  'introspection_encrypted_response_alg',
  'authorization_encrypted_response_alg',
  'request_object_encryption_alg',
] as const;

/** A client whose secret oidc-provider uses as a key (client_secret_jwt, HS* signatures, symmetric encryption). */
export function needsRawSecret(metadata: ClientMetadata): boolean {
  if (metadata.token_endpoint_auth_method === 'client_secret_jwt') return true;
  if (HMAC_ALG_FIELDS.some((f) => typeof metadata[f] === 'string' && (metadata[f] as string).startsWith('HS'))) return true;
  return ENCRYPTION_ALG_FIELDS.some((f) => typeof metadata[f] === 'string' && /^(dir|A\d+(GCM)?KW|PBES2)/.test(metadata[f] as string));
}

/** The stored form of a client record: client_secret replaced by its hash, or sealed where the raw secret is needed. */
export function sealClientMetadata(keys: AtRestKeys, metadata: ClientMetadata): ClientMetadata {
  const { client_secret: secret, ...rest } = metadata;
  if (typeof secret !== 'string') return metadata;
  // A record read back and saved again (`client update`) holds the in-memory stand-in: already the hash.
  if (secret.startsWith(HASHED_SECRET_PREFIX)) return { ...rest, client_secret_hash: secret.slice(HASHED_SECRET_PREFIX.length) };
  if (needsRawSecret(metadata)) return { ...rest, client_secret_sealed: seal(keys, `Client.client_secret:${metadata.client_id}`, secret) };
  return { ...rest, client_secret_hash: clientSecretHash(keys, metadata.client_id, secret) };
}

/** oidc-provider's client metadata from the stored form (a legacy row with a plain secret passes unchanged). */
export function openClientMetadata(keys: AtRestKeys, stored: ClientMetadata): ClientMetadata {
  const {
    client_secret_hash: hash,
    client_secret_sealed: sealed,
    ...rest
  } = stored as ClientMetadata & { client_secret_hash?: string; client_secret_sealed?: string };
  if (typeof hash === 'string') return { ...rest, client_secret: HASHED_SECRET_PREFIX + hash };
  if (typeof sealed === 'string') return { ...rest, client_secret: open(keys, `Client.client_secret:${stored.client_id}`, sealed) };
  return stored;
}

/**
 * Client authentication with a secret (client_secret_basic/post) compares through Client#compareClientSecret: for a
 * hashed secret, hash the presented one and compare the hashes in constant time; otherwise oidc-provider's own check.
 */
export function compareHashedClientSecrets(provider: Provider, keys: AtRestKeys): void {
  const proto = provider.Client.prototype;
  const compareRaw = proto.compareClientSecret;
  proto.compareClientSecret = function compareClientSecret(this: typeof proto, actual: string) {
    const stored = this.clientSecret;
    if (typeof stored !== 'string' || !stored.startsWith(HASHED_SECRET_PREFIX)) return compareRaw.call(this, actual);
    const expected = Buffer.from(stored.slice(HASHED_SECRET_PREFIX.length));
    const presented = Buffer.from(clientSecretHash(keys, this.clientId, actual));
    return presented.length === expected.length && crypto.timingSafeEqual(presented, expected);
  };
}
