// Waiting limits of the tests, from one place: generous on a loaded 2-core machine, never a measure of speed
// (speed targets live in `npm run bench`). IDMS_TEST_SLOWDOWN multiplies them on a slower machine.
import os from 'node:os';

const slowdown = Math.max(1, Number(process.env.IDMS_TEST_SLOWDOWN) || 1) * (os.availableParallelism() <= 2 ? 2 : 1);

/** How long a spawned server (one process or a cluster) may take to be ready. */
export const STARTUP_MS = 30_000 * slowdown;
/** Allowance on top of a server-side deadline before the client sees its effect (timer sweeps, a busy event loop). */
export const SLACK_MS = 1500 * slowdown;
/** How long a change made by one instance may take to be seen by another (NOTIFY, key refresh). */
export const PROPAGATION_MS = 10_000 * slowdown;

/** Polls `check` every 50 ms until it holds, or fails naming `what` after `ms`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms: number, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms\n${detail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
