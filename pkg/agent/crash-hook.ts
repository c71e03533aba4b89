// Test-only crash injection: the agent kills itself with SIGKILL right after a named step of ADD or
// of a release (DEL, GC, reconcile), so a test can check that a real crash at that point leaks
// nothing and that the restarted agent recovers. Off unless CASTNET_TEST_HOOKS=1 is set as well, so
// a stray variable cannot take a production agent down. See docs/testing.md ("Crash tests").
import { writeSync } from 'node:fs';
import { ENDPOINT_STEPS, type EndpointStep } from '../endpoint/node-manager.js';

export const CRASH_AT_ENV = 'CASTNET_TEST_CRASH_AT';
export const TEST_HOOKS_ENV = 'CASTNET_TEST_HOOKS';

/** What the hook does at the armed step: the real one logs synchronously and SIGKILLs the process. */
export type Crash = (step: EndpointStep) => void;

const sigkillSelf: Crash = (step) => {
  // Synchronous: an asynchronous stderr write would be lost with the process.
  writeSync(2, `${JSON.stringify({ msg: 'test crash', step })}\n`);
  process.kill(process.pid, 'SIGKILL');
};

/**
 * The endpoint manager's afterStep hook armed by the environment, or undefined when it is not set.
 * Throws naming the variable when it is set without the test gate or names no step.
 */
export function crashHookFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  crash: Crash = sigkillSelf,
): ((step: EndpointStep) => void) | undefined {
  const at = env[CRASH_AT_ENV];
  if (at === undefined || at === '') return undefined;
  if (env[TEST_HOOKS_ENV] !== '1') {
    throw new Error(`${CRASH_AT_ENV}: a test-only setting, honoured only with ${TEST_HOOKS_ENV}=1`);
  }
  if (!(ENDPOINT_STEPS as readonly string[]).includes(at)) {
    throw new Error(
      `${CRASH_AT_ENV}: ${JSON.stringify(at)} is not a step (one of ${ENDPOINT_STEPS.join(', ')})`,
    );
  }
  return (step) => {
    if (step === at) crash(step);
  };
}
