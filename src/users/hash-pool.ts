// A pool of worker threads hashing passwords (argon2id) for bulk imports, one hash per core at a time.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HashRequest, HashResponse } from './hash-worker.ts';

// The async argon2 of @node-rs/argon2 runs on libuv's shared thread pool (4 threads unless UV_THREADPOOL_SIZE
// is set before start-up), which would cap an import at four cores; dedicated workers scale with the machine.
const CHUNK = 8; // passwords per message: ~0.3 s of work, so messaging costs nothing and the tail stays short

type Task = { passwords: string[]; resolve(hashes: string[]): void; reject(err: Error): void };

export class HashPool {
  readonly size: number;
  readonly #idle: Worker[] = [];
  readonly #busy = new Map<Worker, Task>();
  readonly #queue: Task[] = [];
  #closed = false;
  #failure: Error | undefined;

  constructor(size = os.availableParallelism()) {
    this.size = Math.max(1, size);
    for (let i = 0; i < this.size; i++) this.#idle.push(this.#spawn());
  }

  /** Hashes every password (order kept); rejects if a worker fails. */
  async hashAll(passwords: string[]): Promise<string[]> {
    const parts: Promise<string[]>[] = [];
    for (let i = 0; i < passwords.length; i += CHUNK) {
      const chunk = passwords.slice(i, i + CHUNK);
      parts.push(new Promise((resolve, reject) => this.#submit({ passwords: chunk, resolve, reject })));
    }
    return (await Promise.all(parts)).flat();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const workers = [...this.#idle, ...this.#busy.keys()];
    this.#idle.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }

  #spawn(): Worker {
    // Same extension as this module: hash-worker.ts from the sources, hash-worker.js from the built package (dist/).
    const worker = new Worker(new URL(`./hash-worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url));
    worker.on('message', (res: HashResponse) => {
      const task = this.#busy.get(worker);
      if (!task) return;
      this.#busy.delete(worker);
      if ('error' in res) task.reject(new Error(`password hashing failed: ${res.error}`));
      else task.resolve(res.hashes);
      this.#idle.push(worker);
      this.#drain();
    });
    worker.on('error', (err) => this.#fail(worker, err));
    worker.on('exit', (code) => {
      if (!this.#closed) this.#fail(worker, new Error(`hash worker exited with code ${code}`));
    });
    return worker;
  }

  #submit(task: Task): void {
    if (this.#failure) return task.reject(this.#failure);
    this.#queue.push(task);
    this.#drain();
  }

  #drain(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const worker = this.#idle.pop()!;
      const task = this.#queue.shift()!;
      this.#busy.set(worker, task);
      worker.postMessage({ passwords: task.passwords } satisfies HashRequest);
    }
  }

  // A dead worker fails the import (its batch is not committed, so a rerun resumes before it).
  #fail(worker: Worker, err: Error): void {
    this.#failure ??= err;
    this.#busy.get(worker)?.reject(err);
    this.#busy.delete(worker);
    for (const task of this.#queue.splice(0)) task.reject(err);
  }
}
