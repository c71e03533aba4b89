// Underlay health on a real three-node lab: every agent probes every other on the control port. An
// nftables rule dropping that port on one node, or a lowered MTU on its underlay link, must show in
// `castnet health` (this node's view, from the stats socket) and in the node's report (the matrix,
// from the lookup service) and in the metrics, and the recovery must show too. Probes run every second and a verdict
// flips after 3 lost or 2 answered rounds, so each change is designed to show within 5 s (10 s is
// the documented bound); the deadlines here are generous, and the times are printed, not asserted.
import { join } from 'node:path';
import type { HealthSnapshot } from '../../pkg/agent/health/prober.js';
import type { UnderlayHealthReport, UnderlayPeerStatus } from '../../pkg/lookup/port.js';
import { run, runIn, spawnIn } from '../../pkg/sys/exec.js';
import { waitFor } from '../../pkg/base/async.js';
import { useLab } from '../harness/lab-fixture.js';
import { repoRoot } from '../harness/repo.js';

const castnet = join(repoRoot, 'bin/castnet');
/** The agent's default --health-port: the lab does not set one. */
const HEALTH_PORT = 4792;
const DEADLINE_MS = 30_000;

const { lab, own } = useLab(
  `
nodes: 3
underlayMtu: 1500
networks:
  - { name: blue, id: 100, subnets: [10.40.0.0/16] }
pods:
  - { name: a, node: 0, network: blue }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`,
  { captures: false },
);

/** node-0's metrics sidecar (`castnet agent-metrics`) listens here, on node-0's loopback. */
const METRICS = '127.0.0.1:9403';
const node = (i: number) => lab().topology.nodes[i]!;
/** The lab's embedded lookup service (pkg/lab/lookup.ts). */
const lookupSocket = () => join(lab().topology.dir, 'lookup.sock');

/** `castnet health --json` against node i's agent: the command users run on the node. */
async function nodeView(i: number): Promise<HealthSnapshot> {
  const sock = join(lab().topology.dir, `node-${i}`, 'stats.sock');
  const { stdout } = await run(castnet, ['health', '--stats-socket', sock, '--json']);
  return JSON.parse(stdout) as HealthSnapshot;
}

/** `castnet health --cluster --json` against the lab's lookup service: every node's report. */
async function reports(): Promise<UnderlayHealthReport[]> {
  const { stdout } = await run(castnet, [
    'health',
    '--cluster',
    '--lookup',
    `unix:${lookupSocket()}`,
    '--json',
  ]);
  return JSON.parse(stdout) as UnderlayHealthReport[];
}

type Want = Record<number, Record<number, UnderlayPeerStatus>>;

/**
 * Polls until each node i sees each peer j with status want[i][j], in its agent and its report.
 * Prints how long after `changedAt` the last of those verdicts changed, by the agents' own clocks
 * (the same machine's): the detection time, not the polling's.
 */
async function waitForStatuses(want: Want, what: string, changedAt?: number): Promise<void> {
  let latest = 0;
  await waitFor(
    async () => {
      const rs = await reports();
      latest = 0;
      for (const [i, peers] of Object.entries(want)) {
        const view = await nodeView(Number(i));
        const report = rs.find((r) => r.node === node(Number(i)).name);
        for (const [j, status] of Object.entries(peers)) {
          const name = node(Number(j)).name;
          const seen = view.peers.find((p) => p.node === name)?.status;
          const reported = report?.peers.find((p) => p.node === name)?.status;
          // Thrown, so that a timeout names what was seen last.
          if (seen !== status || reported !== status)
            throw new Error(`node-${i} sees ${name} ${seen}, reports ${reported}; want ${status}`);
          latest = Math.max(latest, view.peers.find((p) => p.node === name)!.since);
        }
      }
      return true;
    },
    { what, timeoutMs: DEADLINE_MS, intervalMs: 200 },
  );
  if (changedAt !== undefined)
    process.stdout.write(`underlay health: ${what}: every verdict in ${latest - changedAt} ms\n`);
}

const allUp: Want = { 0: { 1: 'up', 2: 'up' }, 1: { 0: 'up', 2: 'up' }, 2: { 0: 'up', 1: 'up' } };

beforeAll(async () => {
  await waitForStatuses(allUp, 'every path up after the start');
  own(
    spawnIn(node(0).ns, castnet, [
      'agent-metrics',
      '--stats-socket',
      join(lab().topology.dir, 'node-0', 'stats.sock'),
      '--listen',
      METRICS,
    ]),
  );
}, 120_000);

/** node-0's Prometheus metrics, as the sidecar serves them to a scraper. */
async function metrics(): Promise<string> {
  return (await runIn(node(0).ns, 'curl', ['-sf', `http://${METRICS}/metrics`])).stdout;
}

it('shows a blocked control port on one node as unreachable both ways, and its recovery', async () => {
  const table = `castnet_health_test`;
  const blockedAt = Date.now();
  await runIn(node(1).ns, 'nft', ['-f', '-'], {
    input: `table inet ${table} {\n  chain input {\n    type filter hook input priority 0;\n    udp dport ${HEALTH_PORT} drop\n  }\n}\n`,
  });
  try {
    // node-1 hears nothing: node-0's and node-2's probes are dropped, and so are the replies to its own.
    await waitForStatuses(
      { 0: { 1: 'down', 2: 'up' }, 1: { 0: 'down', 2: 'down' }, 2: { 0: 'up', 1: 'down' } },
      'a dropped control port on node-1',
      blockedAt,
    );
    const n0 = (await reports()).find((r) => r.node === node(0).name)!;
    expect(n0.condition).toEqual({
      status: 'False',
      reason: 'PeerUnreachable',
      message: `unreachable: ${node(1).name}`,
    });
    const matrix = (await run(castnet, ['health', '--cluster', '--lookup', `unix:${lookupSocket()}`])).stdout;
    expect(matrix).toContain(`${node(0).name}: unreachable: ${node(1).name}`);
    const m = await waitFor(metrics, { what: "node-0's metrics sidecar" });
    expect(m).toContain(`castnet_underlay_peer_reachable{peer="${node(1).name}"} 0`);
    expect(m).toContain(`castnet_underlay_peer_reachable{peer="${node(2).name}"} 1`);
    expect(m).toContain('castnet_underlay_peers{status="down"} 1');
    expect(m).toContain('castnet_agent_up 1');
  } finally {
    await runIn(node(1).ns, 'nft', ['delete', 'table', 'inet', table]);
  }
  await waitForStatuses(allUp, 'node-1 recovered from the dropped port', Date.now());
  const n0 = (await reports()).find((r) => r.node === node(0).name)!;
  expect(n0.condition.status).toBe('True');
}, 120_000);

it('shows a lowered MTU on one node as an MTU black hole, not as unreachable, and its recovery', async () => {
  const loweredAt = Date.now();
  await runIn(node(1).ns, 'ip', ['link', 'set', 'ul0', 'mtu', '1400']);
  try {
    // node-0 and node-2's full-size probes are lost on the way into node-1; node-1's own cannot even
    // leave (EMSGSIZE: DF is set, nothing is fragmented). Small probes pass everywhere.
    await waitForStatuses(
      {
        0: { 1: 'mtu-blackhole', 2: 'up' },
        1: { 0: 'mtu-blackhole', 2: 'mtu-blackhole' },
        2: { 0: 'up', 1: 'mtu-blackhole' },
      },
      'MTU 1400 on node-1',
      loweredAt,
    );
    const view0 = await nodeView(0);
    expect(view0.peers.find((p) => p.node === node(1).name)).toMatchObject({
      reachable: true,
      fullSize: false,
    });
    expect(await metrics()).toContain(`castnet_underlay_peer_mtu_ok{peer="${node(1).name}"} 0`);
    const view1 = await nodeView(1);
    expect(view1.peers.find((p) => p.node === node(0).name)?.detail).toMatch(/not sent: .*EMSGSIZE/);
    const n1 = (await reports()).find((r) => r.node === node(1).name)!;
    expect(n1.condition).toEqual({
      status: 'False',
      reason: 'MTUBlackHole',
      message: `1472-byte datagrams lost (MTU black hole): ${node(0).name}, ${node(2).name}`,
    });
  } finally {
    await runIn(node(1).ns, 'ip', ['link', 'set', 'ul0', 'mtu', '1500']);
  }
  await waitForStatuses(allUp, 'node-1 recovered its MTU', Date.now());
}, 120_000);
