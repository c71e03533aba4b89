// The agent DaemonSet's readiness probe: the agent answers on its CNI socket, which it opens only
// after reconciling (pkg/agent/cniserver/server.ts), so a ready agent can serve castnet-cni.
import { request } from 'node:http';
import { HEALTH_PATH } from '../agent/cniserver/server';

/**
 * Resolves when GET /v1/healthz on `socket` answers 200 (and, given `instance`, names that agent
 * process: during a handover the socket is still the predecessor's); rejects naming the socket.
 */
export function probeAgent(socket: string, timeoutMs = 3000, instance?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, path: HEALTH_PATH, method: 'GET', timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          if (res.statusCode !== 200)
            return reject(new Error(`castnet agent at ${socket}: ${HEALTH_PATH} answered ${res.statusCode}`));
          if (instance === undefined) return resolve();
          const seen = instanceOf(body);
          if (seen === instance) return resolve();
          reject(
            new Error(
              `castnet agent at ${socket} is instance ${JSON.stringify(seen)}, not ${JSON.stringify(instance)} (a handover not done yet)`,
            ),
          );
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new Error(`castnet agent at ${socket} is not serving: ${e.message}`)));
    req.end();
  });
}

function instanceOf(body: string): string | undefined {
  try {
    const v = (JSON.parse(body) as { instance?: unknown }).instance;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
