// The agent DaemonSet's readiness probe: the agent answers on its CNI socket, which it opens only
// after reconciling (pkg/agent/cniserver/server.ts), so a ready agent can serve castnet-cni.
import { agentRequest } from '../agent/cniserver/client.js';
import { HEALTH_PATH } from '../agent/cniserver/server.js';

/**
 * Resolves when GET /v1/healthz on `socket` answers 200 (and, given `instance`, names that agent
 * process: during a handover the socket is still the predecessor's); rejects naming the socket.
 */
export async function probeAgent(socket: string, timeoutMs = 3000, instance?: string): Promise<void> {
  const { status, body } = await agentRequest(socket, 'GET', HEALTH_PATH, timeoutMs).catch((e: Error) => {
    throw new Error(`castnet agent at ${socket} is not serving: ${e.message}`, { cause: e });
  });
  if (status !== 200) throw new Error(`castnet agent at ${socket}: ${HEALTH_PATH} answered ${status}`);
  if (instance === undefined) return;
  const seen = instanceOf(body);
  if (seen !== instance) {
    throw new Error(
      `castnet agent at ${socket} is instance ${JSON.stringify(seen)}, not ${JSON.stringify(instance)} (a handover not done yet)`,
    );
  }
}

function instanceOf(body: string): string | undefined {
  try {
    const v = (JSON.parse(body) as { instance?: unknown }).instance;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
