// One request to the agent's unix-socket API (docs/agent-api.md), for its small clients: the
// readiness probe, the metrics sidecar and a successor asking for a handover.
import { request } from 'node:http';

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
