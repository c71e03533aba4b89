// Prometheus metrics for the node agent: the agent serves its counters as JSON on its unix stats
// socket (/v1/stats); `castnet agent-metrics` (a sidecar in the agent's pod) serves them on a TCP
// port in the Prometheus text format, one sample per numeric field, named after its path.
import { createServer, type Server } from 'node:http';
import { agentRequest } from '../agent/cniserver/client.js';
import { errorMessage } from '../base/errors.js';

/** `castnet_agent_<path>` samples for every finite number in `stats`, sorted by name. Pure. */
export function statsToPrometheus(stats: unknown, prefix = 'castnet_agent'): string {
  const samples: Array<[string, number]> = [];
  const walk = (v: unknown, name: string) => {
    if (typeof v === 'number' && Number.isFinite(v)) samples.push([name, v]);
    else if (typeof v === 'boolean') samples.push([name, v ? 1 : 0]);
    else if (Array.isArray(v)) samples.push([`${name}_count`, v.length]);
    else if (v && typeof v === 'object')
      for (const [k, child] of Object.entries(v)) walk(child, `${name}_${metricPart(k)}`);
  };
  walk(stats, prefix);
  samples.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return samples.map(([n, v]) => `# TYPE ${n} untyped\n${n} ${v}\n`).join('');
}

/** camelCase and other characters to a Prometheus name part: rxFrames -> rx_frames. */
const metricPart = (key: string): string =>
  key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9_]/g, '_')
    .toLowerCase();

/** GET /v1/stats on the agent's stats socket. */
export async function readAgentStats(socket: string, timeoutMs = 3000): Promise<unknown> {
  const { status, body } = await agentRequest(socket, 'GET', '/v1/stats', timeoutMs).catch((e: Error) => {
    throw new Error(`castnet agent stats at ${socket}: ${e.message}`, { cause: e });
  });
  if (status !== 200) throw new Error(`${socket}: /v1/stats answered ${status}`);
  try {
    return JSON.parse(body);
  } catch (e) {
    throw new Error(`${socket}: /v1/stats is not JSON: ${errorMessage(e)}`, { cause: e });
  }
}

/**
 * The agent's own Prometheus metrics (GET /v1/metrics on the stats socket: those with labels, such
 * as the underlay health per peer); empty when the agent has none (404).
 */
async function readAgentMetrics(socket: string, timeoutMs = 3000): Promise<string> {
  const { status, body } = await agentRequest(socket, 'GET', '/v1/metrics', timeoutMs).catch((e: Error) => {
    throw new Error(`castnet agent metrics at ${socket}: ${e.message}`, { cause: e });
  });
  if (status === 404) return '';
  if (status !== 200) throw new Error(`${socket}: /v1/metrics answered ${status}`);
  return body.endsWith('\n') || body === '' ? body : body + '\n';
}

/**
 * Serves /metrics (the agent's stats, scraped on each request) and /healthz on host:port. While
 * host:port is taken (during a rolling update, by the previous pod's sidecar on the same node) it
 * retries every `retryMs` instead of failing. Returns at once; `onBound` reports the bind.
 */
export function serveAgentMetricsWhenFree(
  statsSocket: string,
  host: string,
  port: number,
  events: { onBusy: () => void; onBound: () => void; onError: (err: Error) => void },
  retryMs = 1000,
): Server {
  const server = agentMetricsServer(statsSocket);
  let timer: NodeJS.Timeout | undefined;
  const attempt = () => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') return events.onError(err);
      events.onBusy();
      timer = setTimeout(attempt, retryMs);
    });
    server.listen(port, host, () => events.onBound());
  };
  server.once('close', () => clearTimeout(timer));
  attempt();
  return server;
}

function agentMetricsServer(statsSocket: string): Server {
  return createServer((req, res) => {
    if (req.url === '/healthz') return void res.writeHead(200).end('ok\n');
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    Promise.all([readAgentStats(statsSocket), readAgentMetrics(statsSocket)]).then(
      ([stats, labelled]) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(`${statsToPrometheus(stats)}${labelled}castnet_agent_up 1\n`);
      },
      (err: Error) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(`# ${err.message.replace(/\n/g, ' ')}\ncastnet_agent_up 0\n`);
      },
    );
  });
}
