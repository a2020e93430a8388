// The master secret (IDMS_SECRET, or in development one generated into the data dir) and the keys derived from it.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './env.ts';

export type Secrets = Readonly<{
  cookieKeys: string[];
  keyEncryptionKey: Buffer;
  csrfKey: Buffer;
  /** HMAC key under which bearer artefacts (codes, tokens, sessions) and client secrets are stored (src/oidc/at-rest.ts). */
  atRestKey: Buffer;
  /** Keyed hash of submitted VAL user IDs in throttle keys and audit rows (a password typed as ID is never stored). */
  loginIdKey: Buffer;
}>;

export async function loadSecrets(config: Config): Promise<Secrets> {
  const master = config.secret ?? (await readOrCreateDevSecret(config.dataDir));
  return deriveSecrets(master);
}

export function deriveSecrets(master: string): Secrets {
  // HKDF with distinct labels: a leak of one derived key does not expose the others.
  const derive = (label: string) => Buffer.from(crypto.hkdfSync('sha256', master, 'seal-idms', label, 32));
  return Object.freeze({
    cookieKeys: [derive('cookie-signing').toString('base64url')],
    keyEncryptionKey: derive('signing-key-encryption'),
    csrfKey: derive('login-csrf'),
    atRestKey: derive('at-rest-hmac'),
    loginIdKey: derive('login-id-pseudonym'),
  });
}

async function readOrCreateDevSecret(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'secret');
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(dataDir, { recursive: true });
  const secret = crypto.randomBytes(32).toString('base64url');
  try {
    // wx: when the server and the CLI start together, the first writer wins and both read its value.
    await fs.writeFile(file, secret + '\n', { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return (await fs.readFile(file, 'utf8')).trim();
  }
}
