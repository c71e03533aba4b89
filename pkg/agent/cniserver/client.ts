// One request to the agent's unix-socket API (docs/agent-api.md), for its small clients: the
// readiness probe, the metrics sidecar and a successor asking for a handover.
import { request } from 'node:http';
import { HEALTH_PATH } from './server.js';

export interface AgentAnswer {
  status: number;
  body: string;
}

/** Sends `method path` to the agent at `socket`; rejects on no answer within `timeoutMs`, naming
 * what was asked of which socket. */
export function agentRequest(
  socket: string,
  method: string,
  path: string,
  timeoutMs: number,
): Promise<AgentAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// The readiness probe: the agent answers on its CNI socket only after reconciling (server.ts), so a
// ready agent can serve castnet-cni.
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
