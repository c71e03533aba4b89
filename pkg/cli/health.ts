// `castnet health`: the underlay health probes' verdicts (docs/underlay-health.md). Without
// --cluster, this node's view from its agent's stats socket: every peer with reachability, RTT and
// whether full-size datagrams get through. With --cluster, a node-by-node matrix from every node's
// report (MembershipReport status on Kubernetes, or the embedded lookup service's memory).
import type { Command } from 'commander';
import { dirname, join } from 'node:path';
import type { HealthSnapshot } from '../agent/health/prober.js';
import { agentRequest } from '../agent/cniserver/client.js';
import { DEFAULT_AGENT_SOCKET } from '../cni/types.js';
import type { UnderlayHealthReport, UnderlayPeerHealth } from '../lookup/port.js';
import { readUnderlayHealth } from '../lookup/embedded/client.js';

const DEFAULT_STATS_SOCKET = join(dirname(DEFAULT_AGENT_SOCKET), 'stats.sock');

/** Left-aligned columns, two spaces apart. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function ago(since: number, now: number): string {
  const s = Math.max(0, Math.round((now - since) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

const rtt = (ms: number | undefined) => (ms === undefined ? '-' : `${ms.toFixed(2)} ms`);
const yesNo = (b: boolean | undefined, no: string) => (b === undefined ? '?' : b ? 'ok' : no);

/** This node's peers, one line each. Pure: `now` is when the snapshot is shown. */
export function formatNodeHealth(s: HealthSnapshot, now: number): string {
  const head =
    `${s.node} (${s.address}, UDP ${s.port}): a small and a ${s.probeBytes}-byte probe to every peer ` +
    `every ${s.intervalMs} ms (underlay MTU ${s.underlayMtu})`;
  if (s.peers.length === 0) return `${head}\nno peers`;
  const rows = [
    ['PEER', 'ADDRESS', 'STATUS', 'REACHABLE', 'RTT', `MTU ${s.underlayMtu}`, 'SINCE', 'DETAIL'],
    ...s.peers.map((p) => [
      p.node,
      p.address,
      p.status,
      yesNo(p.reachable, 'NO'),
      rtt(p.rttMs),
      yesNo(p.fullSize, 'LOST'),
      ago(p.since, now),
      p.detail ?? '',
    ]),
  ];
  const dropped = Object.entries(s.counters.dropped).map(([k, v]) => `${k} ${v}`);
  return [
    head,
    table(rows),
    `probes sent ${s.counters.probesSent}, answered ${s.counters.probesAnswered}, dropped: ${dropped.join(', ') || 'none'}`,
  ].join('\n');
}

function cell(p: UnderlayPeerHealth | undefined): string {
  if (!p) return '.';
  if (p.status === 'up') return `up ${p.rttMs === undefined ? '' : p.rttMs.toFixed(2)}`.trim();
  return { down: 'DOWN', 'mtu-blackhole': 'MTU', unknown: '?' }[p.status];
}

/**
 * The cluster's matrix: a row per reporting node (from), a column per node (to); `up RTT(ms)`, DOWN
 * (unreachable), MTU (full-size datagrams lost), ? (no verdict yet), `.` (not reported). Then each
 * unhealthy node's condition message.
 */
export function formatMatrix(reports: UnderlayHealthReport[]): string {
  if (reports.length === 0) return 'no node has reported its underlay health';
  const sorted = [...reports].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const nodes = [...new Set(sorted.flatMap((r) => [r.node, ...r.peers.map((p) => p.node)]))].sort();
  const rows = [
    ['FROM \\ TO', ...nodes, 'UNDERLAY HEALTHY'],
    ...sorted.map((r) => [
      r.node,
      ...nodes.map((to) => (to === r.node ? '-' : cell(r.peers.find((p) => p.node === to)))),
      `${r.condition.status} ${r.condition.reason}`,
    ]),
  ];
  const bad = sorted
    .filter((r) => r.condition.status === 'False')
    .map((r) => `${r.node}: ${r.condition.message}`);
  return [table(rows), ...(bad.length ? ['', ...bad] : [])].join('\n');
}

/** GET /v1/health on the agent's stats socket. */
async function nodeHealth(socket: string): Promise<HealthSnapshot> {
  const { status, body } = await agentRequest(socket, 'GET', '/v1/health', 5000).catch((e: Error) => {
    throw new Error(`castnet agent at ${socket}: ${e.message}`, { cause: e });
  });
  if (status === 404)
    throw new Error(`castnet agent at ${socket}: underlay health probes are off (--health-port 0)`);
  if (status !== 200) throw new Error(`castnet agent at ${socket}: /v1/health answered ${status}`);
  return JSON.parse(body) as HealthSnapshot;
}

interface ReportObject {
  metadata: { name: string };
  status?: {
    conditions?: Array<{
      type: string;
      status: 'True' | 'False' | 'Unknown';
      reason: string;
      message: string;
    }>;
    underlay?: { probeBytes: number; peers?: UnderlayPeerHealth[] };
  };
}

/** Every MembershipReport's underlay health: the nodes whose agent wrote one. */
async function clusterHealth(kubeconfig: string | undefined): Promise<UnderlayHealthReport[]> {
  // Loaded here: client-node takes most of a second, which no other use of `castnet health` should pay.
  const [{ CustomObjectsApi }, { loadKubeConfig }, { crd }, { apiCall }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('../k8s/config.js'),
    import('../k8s/resources.js'),
    import('../k8s/api-error.js'),
  ]);
  const custom = loadKubeConfig(kubeconfig).makeApiClient(CustomObjectsApi);
  const list = (await apiCall('list MembershipReports', () =>
    custom.listClusterCustomObject(crd('membershipReport')),
  )) as { items: ReportObject[] };
  return list.items.flatMap((o) => {
    const c = o.status?.conditions?.find((c) => c.type === 'UnderlayHealthy');
    const u = o.status?.underlay;
    if (!c || !u) return [];
    const { status, reason, message } = c;
    return [
      {
        node: o.metadata.name,
        probeBytes: u.probeBytes,
        condition: { status, reason, message },
        peers: u.peers ?? [],
      },
    ];
  });
}

interface HealthOptions {
  statsSocket: string;
  cluster?: boolean;
  lookup?: string;
  kubeconfig?: string;
  json?: boolean;
}

export function registerHealthCommand(program: Command): void {
  program
    .command('health')
    .description(
      "underlay health: this node's peers (reachable, RTT, full-size datagrams), or the cluster's matrix",
    )
    .option('--stats-socket <path>', "this node's agent stats socket", DEFAULT_STATS_SOCKET)
    .option('--cluster', "every node's view of every other, from the nodes' reports")
    .option(
      '--lookup <spec>',
      'with --cluster: kubernetes (default) or unix:PATH (the embedded lookup service)',
    )
    .option(
      '--kubeconfig <file>',
      'with --cluster: kubeconfig (default: KUBECONFIG, ~/.kube/config, in-cluster)',
    )
    .option('--json', 'print the raw answer as JSON')
    .action(async (o: HealthOptions) => {
      let out: unknown;
      let text: string;
      if (o.cluster) {
        const lookup = o.lookup ?? 'kubernetes';
        if (lookup !== 'kubernetes' && !lookup.startsWith('unix:'))
          throw new Error(`--lookup ${lookup}: must be kubernetes or unix:PATH`);
        const reports =
          lookup === 'kubernetes'
            ? await clusterHealth(o.kubeconfig)
            : await readUnderlayHealth(lookup.slice(5));
        out = reports;
        text = formatMatrix(reports);
      } else {
        const snapshot = await nodeHealth(o.statsSocket);
        out = snapshot;
        text = formatNodeHealth(snapshot, Date.now());
      }
      process.stdout.write((o.json ? JSON.stringify(out, null, 2) : text) + '\n');
    });
}
