import { bridgeName, hostIfname } from '../endpoint/names.js';
import { vxlanName } from '../agent/unicast/overlay.js';
import { parseNetConf } from '../cni/netconf.js';
import { isCastnetConflist, primaryConflist } from './cni-files.js';
import { isCastnetLink } from './node-links.js';
import { lowestFree } from './pool-index.js';
import { statsToPrometheus } from './agent-metrics.js';
import { daemonSetDone } from './wait-daemonset.js';

describe('isCastnetLink', () => {
  it.each([bridgeName(0x42), bridgeName(0xffffff), vxlanName(7), hostIfname('c1', 'eth0')])(
    'matches castnet’s %s',
    (n) => expect(isCastnetLink(n)).toBe(true),
  );
  it.each([
    'cni0',
    'cnbr',
    'cnbr12345',
    'cnbr1234567',
    'cnbrxyzxyz',
    'cn0123456789',
    'cnvx00000g',
    'eth0',
    'flannel.1',
  ])('leaves %s alone', (n) => expect(isCastnetLink(n)).toBe(false));
});

test('the primary conflist’s plugin entry is a config castnet-cni accepts', () => {
  const list = primaryConflist({ network: 'blue', mtu: 1400, agentSocket: '/run/x/agent.sock' }) as {
    cniVersion: string;
    name: string;
    plugins: Array<Record<string, unknown>>;
  };
  const conf = parseNetConf({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
  expect(conf).toMatchObject({ network: 'blue', mtu: 1400, agentSocket: '/run/x/agent.sock' });
  expect(isCastnetConflist(JSON.stringify(list))).toBe(true);
  expect(isCastnetConflist('{"plugins":[{"type":"bridge"}]}')).toBe(false);
  expect(isCastnetConflist('not json')).toBe(false);
});

test('daemonSetDone: every scheduled pod of the current generation ready', () => {
  const ds = (generation: number, status?: Record<string, number>) => ({ metadata: { generation }, status });
  expect(daemonSetDone(ds(1))).toBe(false);
  expect(
    daemonSetDone(
      ds(2, { observedGeneration: 1, desiredNumberScheduled: 1, numberReady: 1, updatedNumberScheduled: 1 }),
    ),
  ).toBe(false);
  expect(
    daemonSetDone(
      ds(1, { observedGeneration: 1, desiredNumberScheduled: 3, numberReady: 2, updatedNumberScheduled: 3 }),
    ),
  ).toBe(false);
  expect(
    daemonSetDone(
      ds(1, { observedGeneration: 1, desiredNumberScheduled: 3, numberReady: 3, updatedNumberScheduled: 2 }),
    ),
  ).toBe(false);
  expect(
    daemonSetDone(
      ds(1, { observedGeneration: 1, desiredNumberScheduled: 3, numberReady: 3, updatedNumberScheduled: 3 }),
    ),
  ).toBe(true);
  // No node to run on: nothing to clean.
  expect(daemonSetDone(ds(1, { observedGeneration: 1, desiredNumberScheduled: 0 }))).toBe(true);
});

test('lowestFree: the first index no node holds, none when all are held', () => {
  expect(lowestFree([])).toBe(0);
  expect(lowestFree([0, 1, 3])).toBe(2);
  expect(lowestFree([2, 0, 1])).toBe(3);
  expect(lowestFree([0, 1, 2], 2)).toBeUndefined();
});

test('statsToPrometheus: every number of the agent’s stats as a sample named after its path', () => {
  const text = statsToPrometheus({
    node: 'n1',
    endpoints: 3,
    dataplane: { rxFrames: 10, 'drops.queue': 2 },
    capture: { ok: true },
    problems: [1, 2],
  });
  expect(text.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([
    'castnet_agent_capture_ok 1',
    'castnet_agent_dataplane_drops_queue 2',
    'castnet_agent_dataplane_rx_frames 10',
    'castnet_agent_endpoints 3',
    'castnet_agent_problems_count 2',
  ]);
});
