// The end of a long-running command (agent, controller, metrics sidecar): stop on SIGTERM or SIGINT,
// then exit. Explicitly, because as PID 1 of a container a process ignores the signals it has no
// handler for, and because handles left open (a watch, a timer) would keep it alive after stop(),
// so the kubelet would wait out the whole termination grace period on every rollout.
import { errorMessage } from '../base/errors.js';
import type { Logger } from '../log/log.js';

export async function runUntilSignal(
  stop: () => Promise<void>,
  log: Logger,
  graceMs = 10_000,
): Promise<never> {
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('stopping', { signal });
  // A stop that hangs must not hold the node's rollout: exit anyway after the grace.
  setTimeout(() => process.exit(1), graceMs).unref();
  const code = await stop().then(
    () => 0,
    (err: unknown) => {
      log.error('stop failed', { error: errorMessage(err) });
      return 1;
    },
  );
  process.exit(code);
}
