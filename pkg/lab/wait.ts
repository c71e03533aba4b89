// Polling for a condition with a deadline: the lab waits for what the system does (a membership in
// the directory, a kernel's group list, an agent's socket), never for a fixed time.
import { sleep } from '../base/async.js';

/**
 * Resolves once `done()` is true, checking every `intervalMs`; rejects after `timeoutMs` with
 * "timed out after … waiting for <what>" (or the error `what` makes). An exception from `done()`
 * (a failure it detected) rejects at once.
 */
export async function waitFor(
  done: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string | (() => Error),
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline)
      throw typeof what === 'string'
        ? new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
        : what();
    await sleep(intervalMs);
  }
}
