import { errorMessage } from './errors.js';

/** Resolves after `ms` milliseconds, or at once (rejecting with the reason) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface WaitOptions {
  /** What is awaited, for the timeout message: "timed out after N ms waiting for <what>". */
  what: string;
  /** Default 20 s: generous, as a loaded 2-core machine can be slow; a passing wait never reaches it. */
  timeoutMs?: number;
  /** Pause between probes; default 50 ms. */
  intervalMs?: number;
  /**
   * What the probe saw last, for the timeout message ("ka2 is BACKUP"): called once, at the
   * timeout, so it tells the state then, not when the wait began.
   */
  observed?: () => string;
  /**
   * A probe's exception rejects at once (the probe detected a failure, such as its process
   * exiting) instead of counting as not yet. Default false.
   */
  failFast?: boolean;
}

/**
 * Polls `probe` until it returns a value that is neither undefined nor false, and resolves with
 * that value. Waiting for what the system does, never for a fixed time. A probe that throws counts
 * as not yet (unless `failFast`); one that hangs is not awaited past the deadline. The timeout
 * error names what was awaited, the last thing observed and the probe's last error (also its cause).
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  opts: WaitOptions,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await beforeDeadline(probe(), deadline);
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (opts.failFast && err !== PROBE_OVERRAN) throw err;
      lastError = err === PROBE_OVERRAN ? new Error('the last probe did not finish') : err;
    }
    if (Date.now() >= deadline) {
      const seen = opts.observed ? `; observed: ${opts.observed()}` : '';
      const why = lastError === undefined ? '' : `; last error: ${errorMessage(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${seen}${why}`, {
        cause: lastError,
      });
    }
    await sleep(Math.min(opts.intervalMs ?? 50, Math.max(0, deadline - Date.now())));
  }
}

const PROBE_OVERRAN = Symbol('probe overran the deadline');

/** `value`, or a rejection with PROBE_OVERRAN once `deadline` passed without it settling. */
async function beforeDeadline<T>(value: T | Promise<T>, deadline: number): Promise<T> {
  if (!(value instanceof Promise)) return value;
  let timer: NodeJS.Timeout | undefined;
  const overran = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(PROBE_OVERRAN), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([value, overran]);
  } finally {
    clearTimeout(timer);
  }
}
