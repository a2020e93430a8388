// Worker thread of the hash pool: computes argon2id hashes synchronously, so each worker keeps one core busy.
import { parentPort } from 'node:worker_threads';
import { hashSync } from '@node-rs/argon2';
import { PARAMS } from './passwords.ts';

// One request at a time per worker, so replies need no correlation id.
export type HashRequest = { passwords: string[] };
export type HashResponse = { hashes: string[] } | { error: string };

// Guarded so that importing this module outside a worker (the bundle's smoke check) has no effect.
parentPort?.on('message', (request: HashRequest) => {
  try {
    parentPort!.postMessage({ hashes: request.passwords.map((p) => hashSync(p, PARAMS)) } satisfies HashResponse);
  } catch (err) {
    parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) } satisfies HashResponse);
  }
});
