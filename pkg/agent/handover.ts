// The successor's side of an agent handover (docs/agent-api.md, POST /v1/handover): a new agent on a
// node that another agent still serves (a rolling update's surge pod) asks it to stop, so that the
// node's data plane passes from one to the other with no moment where both forward.
import type { Logger } from '../log/log.js';
import type { LookupService } from '../lookup/port.js';
import { agentRequest, probeAgent } from './cniserver/client.js';
import { HANDOVER_PATH } from './cniserver/server.js';
import { sleep } from '../base/async.js';
import { errorMessage } from '../base/errors.js';

/** How long the predecessor may take to stop, and the successor waits for its first directory. */
export const HANDOVER_TIMEOUT_MS = 5000;
const GONE_POLL_MS = 100;

/** Resolves with the lookup service's first directory, or after `timeoutMs` without one. */
export function firstDirectory(lookup: LookupService, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // The callback may run inside subscribe(), before it returned its unsubscribe function.
      queueMicrotask(() => unsubscribe());
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    const unsubscribe = lookup.subscribe(finish);
  });
}

/** POST /v1/handover; resolves once the predecessor answered that it stopped. */
export async function requestHandover(socket: string, timeoutMs: number): Promise<void> {
  const { status, body } = await agentRequest(socket, 'POST', HANDOVER_PATH, timeoutMs);
  if (status !== 200) throw new Error(`${HANDOVER_PATH} answered ${status}: ${body.slice(0, 200)}`);
}

/**
 * Takes the node over from the agent serving `socket`. If it does not hand over (an older agent, or
 * one that hangs), waits up to `timeoutMs` for it to go and then proceeds as after a restart.
 */
export async function takeOverFrom(socket: string, timeoutMs: number, log: Logger): Promise<void> {
  const started = Date.now();
  try {
    await requestHandover(socket, timeoutMs);
    log.info('the running agent handed the node over', { socket, ms: Date.now() - started });
    return;
  } catch (err) {
    log.warn('the running agent did not hand over; waiting for it to stop', {
      socket,
      error: errorMessage(err),
    });
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const alive = await probeAgent(socket, 1000).then(
      () => true,
      () => false,
    );
    if (!alive) return;
    await sleep(GONE_POLL_MS);
  }
  log.warn('the running agent is still serving; taking over its socket anyway', { socket });
}
