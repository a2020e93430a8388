// Password hashing: argon2id at or above the OWASP minimum (m=19 MiB, t=2, p=1), computed off the event loop.
import { hash, verify } from '@node-rs/argon2';

// @node-rs/argon2 defaults to argon2id and runs each hash on the libuv thread pool.
const PARAMS = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export const MAX_PASSWORD_LENGTH = 1024;

export function hashPassword(password: string): Promise<string> {
  return hash(password, PARAMS);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
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
