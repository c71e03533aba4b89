// The agent DaemonSet's readiness probe: the agent answers on its CNI socket, which it opens only
// after reconciling (pkg/agent/cniserver/server.ts), so a ready agent can serve castnet-cni.
import { request } from 'node:http';
import { HEALTH_PATH } from '../agent/cniserver/server';

/** Resolves when GET /v1/healthz on `socket` answers 200; rejects naming the socket otherwise. */
export function probeAgent(socket: string, timeoutMs = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, path: HEALTH_PATH, method: 'GET', timeout: timeoutMs },
      (res) => {
        res.resume();
        if (res.statusCode === 200) resolve();
        else reject(new Error(`castnet agent at ${socket}: ${HEALTH_PATH} answered ${res.statusCode}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new Error(`castnet agent at ${socket} is not serving: ${e.message}`)));
    req.end();
  });
}
