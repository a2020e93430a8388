// Password hashing: argon2id at or above the OWASP minimum (m=19 MiB, t=2, p=1), computed off the event loop.
import os from 'node:os';
import { hash, verify } from '@node-rs/argon2';
import { ARGON2_TARGET, isArgon2, verifyLegacyHash } from './hash-formats.ts';

// @node-rs/argon2 defaults to argon2id and runs each hash on the libuv thread pool.
export const PARAMS = { ...ARGON2_TARGET, parallelism: 1 } as const;

// The one password policy (`user add|passwd`, `user import`, any future admin API): 8 characters at least, as NIST
// SP 800-63B §5.1.1.2 asks of memorized secrets; the upper bound caps the hashing work one request can cause.
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

/** Why a new password is refused, or undefined. The reason never echoes the password. */
export function passwordPolicyProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH)
    return `password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`;
  return undefined;
}

// Each argon2id computation holds its 19 MiB for its whole run. More at once than there are cores buys no speed,
// costs 19 MiB of resident memory per extra one (libuv runs four by default), and takes the libuv threads that
// token signing (WebCrypto) also runs on. Extra logins wait their turn. The cores are the machine's, shared by the
// cluster's workers: `serve` gives each worker its share (shareHashingAmong), so that N workers hash at most as many
// passwords at once as there are cores, not N times as many (issue 16: a worker's peak memory).
let maxConcurrentHashes = Math.max(1, os.availableParallelism());
let hashing = 0;

/** This process is one of `processes` serving on the machine: it hashes at most its share of the cores at once. */
export function shareHashingAmong(processes: number): void {
  maxConcurrentHashes = Math.max(1, Math.floor(os.availableParallelism() / Math.max(1, processes)));
}

/** How many passwords this process hashes at once at most; the others wait. */
export function hashingCapacity(): number {
  return maxConcurrentHashes;
}
const waiting: (() => void)[] = [];

async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (hashing < maxConcurrentHashes) hashing++;
  else await new Promise<void>((resolve) => waiting.push(resolve)); // the finishing one hands its slot over
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else hashing--;
  }
}

export function hashPassword(password: string): Promise<string> {
  return limited(() => hash(password, PARAMS));
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    // Hashes imported from another IdP (bcrypt, PBKDF2) until the user's next login re-hashes them.
    return isArgon2(passwordHash) ? await limited(() => verify(passwordHash, password)) : await verifyLegacyHash(passwordHash, password);
  } catch {
    return false; // a malformed stored hash is a failed login, not a 500
  }
}

let dummyHash: Promise<string> | undefined;

/**
 * Verifies against a throwaway hash with the same parameters, so an unknown user costs
 * the same time as a wrong password and timing does not reveal which IDs exist.
 */
export async function burnVerification(password: string): Promise<false> {
  dummyHash ??= hashPassword('seal-idms timing equaliser');
  await verifyPassword(await dummyHash, password);
  return false;
}
