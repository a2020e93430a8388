// Load generator for the benchmark: keep-alive HTTP client, closed-loop (max rate) and paced (fixed rate) runs.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export type HttpResponse = { status: number; headers: http.IncomingHttpHeaders; body: string };

/** A keep-alive HTTP/1.1 client for one origin; at most `connections` sockets. */
export class HttpClient {
  readonly origin: URL;
  readonly #agent: http.Agent;

  constructor(origin: string, connections: number) {
    this.origin = new URL(origin);
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, scheduling: 'fifo' });
  }

  request(method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: string): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.origin.hostname,
          port: this.origin.port,
          method,
          path,
          agent: this.#agent,
          headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** application/x-www-form-urlencoded POST. */
  form(path: string, form: Record<string, string>, headers: http.OutgoingHttpHeaders = {}): Promise<HttpResponse> {
    return this.request('POST', path, { 'content-type': 'application/x-www-form-urlencoded', ...headers }, new URLSearchParams(form).toString());
  }

  close(): void {
    this.#agent.destroy();
  }
}

/**
 * One unit of work. It throws (or rejects) when the outcome is not the expected one; that counts as an error.
 * `restartClock` excludes client-side preparation (e.g. minting an assertion) from the measured latency.
 */
export type Operation = (restartClock: () => void) => Promise<void>;

export type LoadResult = {
  ok: number;
  errors: number;
  /** Successful operations per second over the measured interval. */
  rate: number;
  seconds: number;
  p50: number;
  p99: number;
  max: number;
  /** A few distinct error messages, for the report. */
  errorSamples: string[];
};

class Recorder {
  readonly latencies: number[] = [];
  errors = 0;
  readonly samples = new Set<string>();

  success(ms: number): void {
    this.latencies.push(ms);
  }

  failure(err: unknown): void {
    this.errors++;
    if (this.samples.size < 5) this.samples.add(err instanceof Error ? err.message.slice(0, 200) : String(err));
  }

  result(seconds: number): LoadResult {
    const sorted = Float64Array.from(this.latencies).sort();
    const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN);
    return {
      ok: sorted.length,
      errors: this.errors,
      rate: sorted.length / seconds,
      seconds,
      p50: at(0.5),
      p99: at(0.99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
      errorSamples: [...this.samples],
    };
  }
}

/**
 * Closed loop: `concurrency` callers each issue the next operation as soon as the previous one ends, until
 * `seconds` have passed or `maxCount` operations were started. Measures the maximum sustainable rate.
 */
export async function closedLoop(op: Operation, options: { concurrency: number; seconds: number; maxCount?: number }): Promise<LoadResult> {
  const rec = new Recorder();
  const start = performance.now();
  const deadline = start + options.seconds * 1000;
  const maxCount = options.maxCount ?? Number.POSITIVE_INFINITY;
  let started = 0;
  // A flow that can only fail (e.g. its state is gone) would otherwise spin through millions of errors.
  const hopeless = () => rec.errors > 1000 && rec.errors > 10 * rec.latencies.length;
  const caller = async () => {
    while (performance.now() < deadline && started < maxCount && !hopeless()) {
      started++;
      let t0 = performance.now();
      try {
        await op(() => (t0 = performance.now()));
        rec.success(performance.now() - t0);
      } catch (err) {
        rec.failure(err);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, caller));
  return rec.result((performance.now() - start) / 1000);
}

/**
 * Open loop at a fixed arrival rate (for latency at a given load). Latency counts from each operation's
 * scheduled start, so a stalled server is not hidden by a generator that waits for it (coordinated
 * omission). At most `maxInFlight` operations run at once; arrivals beyond that are counted as errors.
 */
export async function paced(op: Operation, options: { rate: number; seconds: number; maxInFlight?: number }): Promise<LoadResult> {
  const rec = new Recorder();
  const interval = 1000 / options.rate;
  const total = Math.max(1, Math.floor(options.rate * options.seconds));
  const maxInFlight = options.maxInFlight ?? 512;
  const start = performance.now();
  const running = new Set<Promise<void>>();
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (running.size >= maxInFlight) {
      rec.failure(new Error(`more than ${maxInFlight} requests in flight`));
      continue;
    }
    const p = (async () => {
      let t0 = due;
      try {
        await op(() => (t0 = Math.max(due, performance.now())));
        rec.success(performance.now() - t0);
      } catch (err) {
        rec.failure(err);
      }
    })();
    running.add(p);
    void p.finally(() => running.delete(p));
  }
  await Promise.all(running);
  return rec.result((performance.now() - start) / 1000);
}

/** Throws with the status and the start of the body when a response is not the expected one. */
export function expectStatus(res: HttpResponse, status: number, what: string): void {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${res.body.slice(0, 160).replace(/\s+/g, ' ')}`);
}
