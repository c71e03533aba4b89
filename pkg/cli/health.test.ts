// What `castnet health` prints: this node's peers, and the cluster's node-by-node matrix.
import type { HealthSnapshot } from '../agent/health/prober.js';
import type { UnderlayHealthReport } from '../lookup/port.js';
import { formatMatrix, formatNodeHealth } from './health.js';

const since = '2026-01-01T00:00:00.000Z';
const report = (
  node: string,
  peers: UnderlayHealthReport['peers'],
  condition: UnderlayHealthReport['condition'],
) => ({
  node,
  probeBytes: 1472,
  condition,
  peers,
});
const healthy = { status: 'True', reason: 'AllPeersReachable', message: '2 peers reachable' } as const;

it('prints the matrix: a row per reporting node, DOWN and MTU where a path fails, and why', () => {
  const text = formatMatrix([
    report(
      'n1',
      [
        { node: 'n0', status: 'up', rttMs: 0.3, since },
        { node: 'n2', status: 'mtu-blackhole', rttMs: 0.25, since },
      ],
      { status: 'False', reason: 'MTUBlackHole', message: '1472-byte datagrams lost (MTU black hole): n2' },
    ),
    report(
      'n0',
      [
        { node: 'n1', status: 'up', rttMs: 0.312, since },
        { node: 'n2', status: 'down', since },
      ],
      { status: 'False', reason: 'PeerUnreachable', message: 'unreachable: n2' },
    ),
    report('n2', [{ node: 'n0', status: 'unknown', since }], healthy),
  ]);
  expect(text).toBe(
    [
      'FROM \\ TO  n0       n1       n2    UNDERLAY HEALTHY',
      'n0         -        up 0.31  DOWN  False PeerUnreachable',
      'n1         up 0.30  -        MTU   False MTUBlackHole',
      'n2         ?        .        -     True AllPeersReachable',
      '',
      'n0: unreachable: n2',
      'n1: 1472-byte datagrams lost (MTU black hole): n2',
    ].join('\n'),
  );
  expect(formatMatrix([])).toBe('no node has reported its underlay health');
});

it("prints this node's peers with reachability, RTT, MTU and the reason", () => {
  const s: HealthSnapshot = {
    node: 'n0',
    address: '198.18.0.10',
    port: 4792,
    underlayMtu: 1500,
    probeBytes: 1472,
    intervalMs: 1000,
    thresholds: { timeoutMs: 1000, losses: 3, replies: 2 },
    peers: [
      {
        node: 'n1',
        address: '198.18.0.11',
        status: 'up',
        reachable: true,
        fullSize: true,
        rttMs: 0.25,
        since: 0,
        sent: 10,
        lost: 0,
      },
      {
        node: 'n2',
        address: '198.18.0.12',
        status: 'mtu-blackhole',
        reachable: true,
        fullSize: false,
        rttMs: 0.5,
        since: 5000,
        detail: '3 1472-byte probes (small ones are answered) lost in a row, last: no reply within 1000 ms',
        sent: 10,
        lost: 3,
      },
    ],
    counters: {
      probesSent: 20,
      sendErrors: 0,
      repliesReceived: 17,
      probesAnswered: 20,
      dropped: { 'bad-tag': 2 },
    },
  };
  expect(formatNodeHealth(s, 8000).split('\n')).toEqual([
    'n0 (198.18.0.10, UDP 4792): a small and a 1472-byte probe to every peer every 1000 ms (underlay MTU 1500)',
    'PEER  ADDRESS      STATUS         REACHABLE  RTT      MTU 1500  SINCE   DETAIL',
    'n1    198.18.0.11  up             ok         0.25 ms  ok        8s ago',
    'n2    198.18.0.12  mtu-blackhole  ok         0.50 ms  LOST      3s ago  3 1472-byte probes (small ones are answered) lost in a row, last: no reply within 1000 ms',
    'probes sent 20, answered 20, dropped: bad-tag 2',
  ]);
});
