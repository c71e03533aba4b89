// Polling instead of fixed sleeps: a test waits until its condition holds, or fails after a generous
// deadline naming what it waited for. A negative check ("X did not arrive") waits for a positive
// control sent after X instead of sleeping: once the control arrived, X had its chance.
import { errorMessage } from '../../pkg/base/errors.js';
import { sleep } from '../../pkg/base/async.js';

export interface WaitOptions {
  /** What is awaited, for the timeout message. */
  what: string;
  /** Default 20 s: generous, as a loaded 2-core machine can be slow; a passing test never waits it out. */
  timeoutMs?: number;
  /** Default 50 ms. */
  intervalMs?: number;
}

/**
 * Resolves with the first value of `probe` that is neither undefined nor false. A probe that throws
 * counts as not yet; the timeout error carries its last error.
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  opts: WaitOptions,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last === undefined ? '' : `: ${errorMessage(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${why}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}
