// Password hashes imported from another IdP (argon2, bcrypt, PBKDF2): recognised, bounded, verified; argon2id is ours.
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';

export type HashFormat = 'argon2' | 'bcrypt' | 'pbkdf2';

// PHC string format (github.com/P-H-C/phc-string-format): $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, B64 without padding.
const ARGON2 = /^\$argon2(id|i)\$(?:v=(\d+)\$)?m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/;
// Modular crypt format of OpenBSD bcrypt: $2b$<cost>$<22 chars salt><31 chars hash>; 2a and 2y are the same algorithm.
const BCRYPT = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;
// passlib's format: $pbkdf2-sha256$<iterations>$<salt>$<derived key>, in passlib's adapted base64 ("." for "+",
// no padding). Standard base64 ("+", "=") is accepted too, so a Keycloak credential (salt and value in base64)
// converts by concatenation.
const PBKDF2 = /^\$pbkdf2-(sha256|sha512)\$(\d{1,8})\$([A-Za-z0-9+/.]+={0,2})\$([A-Za-z0-9+/.]+={0,2})$/;

// Upper bounds on the work one stored hash can cost at login (a hostile or mistaken import must not turn
// each login attempt into seconds of CPU), and lower bounds below which a value cannot be a real hash.
export const IMPORT_LIMITS = Object.freeze({
  argon2: { maxMemoryKiB: 262_144, maxTime: 20, maxParallelism: 16 },
  bcrypt: { minCost: 4, maxCost: 14 },
  pbkdf2: { maxIterations: 2_000_000, minKeyBytes: 16, minSaltBytes: 8 },
});

/** Our own parameters (OWASP minimum for argon2id), below which a successful login re-hashes. */
export const ARGON2_TARGET = Object.freeze({ memoryCost: 19456, timeCost: 2 });

export function hashFormat(hash: string): HashFormat | undefined {
  if (ARGON2.test(hash)) return 'argon2';
  if (BCRYPT.test(hash)) return 'bcrypt';
  if (PBKDF2.test(hash)) return 'pbkdf2';
  return undefined;
}

/** Why a password_hash cell cannot be imported, or undefined when it can be stored as it is. */
export function importedHashProblem(hash: string): string | undefined {
  const a = ARGON2.exec(hash);
  if (a) {
    const [m, t, p] = [Number(a[3]), Number(a[4]), Number(a[5])];
    const l = IMPORT_LIMITS.argon2;
    if (a[2] !== undefined && a[2] !== '19' && a[2] !== '16') return `unsupported argon2 version v=${a[2]}`;
    if (m > l.maxMemoryKiB || t > l.maxTime || p > l.maxParallelism || m < 8 * p || t < 1 || p < 1) {
      return `argon2 parameters out of range (m ≤ ${l.maxMemoryKiB} KiB, t ≤ ${l.maxTime}, p ≤ ${l.maxParallelism})`;
    }
    return undefined;
  }
  const b = BCRYPT.exec(hash);
  if (b) {
    const cost = Number(b[1]);
    const l = IMPORT_LIMITS.bcrypt;
    return cost < l.minCost || cost > l.maxCost ? `bcrypt cost ${cost} out of range (${l.minCost} to ${l.maxCost})` : undefined;
  }
  const k = PBKDF2.exec(hash);
  if (k) {
    const l = IMPORT_LIMITS.pbkdf2;
    const iterations = Number(k[2]);
    if (iterations < 1 || iterations > l.maxIterations) return `PBKDF2 iterations out of range (1 to ${l.maxIterations})`;
    if (ab64(k[3]!).length < l.minSaltBytes || ab64(k[4]!).length < l.minKeyBytes) return `PBKDF2 salt or key too short`;
    return undefined;
  }
  return 'unrecognised password_hash (expected $argon2id$/$argon2i$, $2a$/$2b$/$2y$ or $pbkdf2-sha256$/$pbkdf2-sha512$)';
}

/** Verifies a password against a non-argon2 stored hash; argon2 is passwords.ts' own path. */
export async function verifyLegacyHash(hash: string, password: string): Promise<boolean> {
  if (BCRYPT.test(hash)) return bcrypt.compare(password, hash); // bcryptjs yields to the event loop between rounds
  const k = PBKDF2.exec(hash);
  if (k) {
    const expected = ab64(k[4]!);
    const actual = await pbkdf2(password, ab64(k[3]!), Number(k[2]), expected.length, k[1]!);
    return crypto.timingSafeEqual(actual, expected);
  }
  return false;
}

/** True when a successful login should replace the stored hash by a fresh argon2id one. */
export function needsRehash(hash: string): boolean {
  const a = ARGON2.exec(hash);
  if (!a) return true;
  return a[1] !== 'id' || (a[2] ?? '16') !== '19' || Number(a[3]) < ARGON2_TARGET.memoryCost || Number(a[4]) < ARGON2_TARGET.timeCost;
}

export function isArgon2(hash: string): boolean {
  return hash.startsWith('$argon2');
}

const pbkdf2 = promisify(crypto.pbkdf2); // on the libuv thread pool, off the event loop

function ab64(value: string): Buffer {
  return Buffer.from(value.replace(/\./g, '+'), 'base64');
}
