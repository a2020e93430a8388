// Signing keys: generated here, private parts encrypted at rest, shared by every instance through PostgreSQL.
import crypto from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Config } from '../config/env.ts';
import type { Db } from '../db/knex.ts';

/** Algorithms a resource server may choose for its access tokens (`resource add --alg`). */
export const SIGNING_ALGS = ['ES256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/** Algorithms a client may register for its ID tokens (`client add|update --id-token-alg`); RS256 unless it does (OIDC Core §3.1.3.7). */
export const ID_TOKEN_ALGS = ['RS256', 'ES256', 'PS256', 'EdDSA'] as const;
export type IdTokenAlg = (typeof ID_TOKEN_ALGS)[number];

/**
 * One active key per algorithm anything may be signed with (access tokens, ID tokens, security tokens), so a client
 * registered for any ID token algorithm is served at once, by every instance, and rotation renews them all.
 */
export const KEY_ALGS = ['ES256', 'RS256', 'PS256', 'EdDSA'] as const;
export type KeyAlg = (typeof KEY_ALGS)[number];

type KeyRow = {
  kid: string;
  alg: KeyAlg;
  public_jwk: JWK;
  private_jwk_encrypted: string;
  status: 'active' | 'retired';
  created_at: Date;
  retired_at: Date | null;
};

export type SigningKeySet = {
  /** Private JWKs, active first: oidc-provider signs with the first key that fits an algorithm. */
  keys: JWK[];
  /** Changes whenever a key is added, retired or expires out of the set. */
  fingerprint: string;
};

/**
 * Longest lifetime of anything signed with a key, plus clock skew: how long a retired key stays published (and is
 * loaded) so that every token it signed can still be verified. The server, the CLI and tests all use this one rule.
 */
export function keyRetentionSeconds(config: Config): number {
  const clockSkew = 60;
  return Math.max(config.ttl.accessToken, config.ttl.idToken, config.ttl.securityToken) + clockSkew;
}

// One lock id for key generation and rotation, so concurrent instances never create two active keys.
const KEY_LOCK = 0x5ea1_1d35;

export async function ensureSigningKeys(db: Db, kek: Buffer): Promise<void> {
  const active = await db('signing_keys').where({ status: 'active' }).pluck('alg');
  if (KEY_ALGS.every((alg) => active.includes(alg))) return;
  await db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [KEY_LOCK]);
    const present = await trx('signing_keys').where({ status: 'active' }).pluck('alg');
    for (const alg of KEY_ALGS) {
      if (!present.includes(alg)) await trx('signing_keys').insert(await newKeyRow(alg, kek));
    }
  });
}

/** Retires every active key and activates fresh ones; returns the new kids. */
export async function rotateSigningKeys(db: Db, kek: Buffer): Promise<string[]> {
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [KEY_LOCK]);
    await trx('signing_keys').where({ status: 'active' }).update({ status: 'retired', retired_at: trx.fn.now() });
    const rows = await Promise.all(KEY_ALGS.map((alg) => newKeyRow(alg, kek)));
    await trx('signing_keys').insert(rows);
    return rows.map((r) => r.kid);
  });
}

/**
 * Active keys plus retired keys still needed to verify tokens they signed: a retired key stays
 * published until `retainSeconds` (the longest token lifetime signed with it) has passed.
 */
export async function loadSigningKeys(db: Db, kek: Buffer, retainSeconds: number): Promise<SigningKeySet> {
  const rows = (await liveKeys(db, retainSeconds)) as KeyRow[];
  return {
    keys: rows.map((r) => ({ ...decryptJwk(r.private_jwk_encrypted, kek, r.kid), kid: r.kid, alg: r.alg, use: 'sig' })),
    fingerprint: fingerprintOf(rows),
  };
}

export async function signingKeysFingerprint(db: Db, retainSeconds: number): Promise<string> {
  return fingerprintOf((await liveKeys(db, retainSeconds, ['kid', 'status'])) as KeyRow[]);
}

/** The public JWKS handed to partners and resource servers (same content as the jwks_uri). */
export async function exportPublicJwks(db: Db, retainSeconds: number): Promise<{ keys: JWK[] }> {
  const rows = (await liveKeys(db, retainSeconds)) as KeyRow[];
  return { keys: rows.map((r) => ({ ...r.public_jwk, kid: r.kid, alg: r.alg, use: 'sig' })) };
}

function liveKeys(db: Db, retainSeconds: number, columns: string[] = ['*']) {
  return db('signing_keys')
    .select(columns)
    .where({ status: 'active' })
    .orWhere((q) => q.where({ status: 'retired' }).andWhere('retired_at', '>', db.raw('now() - make_interval(secs => ?)', [retainSeconds])))
    .orderByRaw("status = 'active' desc, created_at desc, kid");
}

function fingerprintOf(rows: Pick<KeyRow, 'kid' | 'status'>[]): string {
  return rows.map((r) => `${r.kid}:${r.status}`).join(',');
}

async function newKeyRow(alg: KeyAlg, kek: Buffer) {
  // EdDSA keys are Ed25519 (RFC 8037).
  const options = alg === 'RS256' || alg === 'PS256' ? { modulusLength: 2048 } : alg === 'EdDSA' ? { crv: 'Ed25519' } : {};
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const privateJwk = await exportJWK(privateKey);
  return {
    kid,
    alg,
    public_jwk: JSON.stringify(publicJwk),
    private_jwk_encrypted: encryptJwk(privateJwk, kek, kid),
    status: 'active' as const,
  };
}

// AES-256-GCM with the kid as associated data: a ciphertext moved to another row does not decrypt.
function encryptJwk(jwk: JWK, kek: Buffer, kid: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(kid));
  const ct = Buffer.concat([cipher.update(JSON.stringify(jwk), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
}

function decryptJwk(sealed: string, kek: Buffer, kid: string): JWK {
  const raw = Buffer.from(sealed, 'base64url');
  const decipher = crypto.createDecipheriv('aes-256-gcm', kek, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(kid));
  decipher.setAuthTag(raw.subarray(12, 28));
  try {
    return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')) as JWK;
  } catch {
    throw new Error(`signing key ${kid} cannot be decrypted: IDMS_SECRET differs from the one it was stored with`);
  }
}
