// A rolling upgrade from wire format version 1 to version 2 on real agents: during the mixed phase
// (node 0 with --wire-version 1, node 1 with the default version 2) multicast crosses both ways in
// version 1, exactly once; once node 0 is upgraded in place, both ways are sealed with pair keys.
import { join } from 'node:path';
import { Lab } from '../../pkg/lab/runner.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import type { NodeRecord } from '../../pkg/lookup/port.js';
import { waitFor } from '../../pkg/base/async.js';
import { arrived, capturedDatagrams, drops } from '../harness/underlay.js';

const root = join(import.meta.dirname, '../..');
const GROUP = '239.7.7.7';

const labFile = parseLabFile(`
nodes: 2
networks:
  - { name: blue, id: 100, subnets: [10.33.0.0/16] }
pods:
  - { name: a1, node: 0, network: blue }
  - { name: b1, node: 1, network: blue }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`);

let lab: Lab;

beforeAll(async () => {
  lab = new Lab(labFile, {
    castnetBin: join(root, 'bin/castnet'),
    cniBin: join(root, 'bin/castnet-cni'),
    nodeAgentArgs: { 0: ['--wire-version', '1'] },
  });
  await lab.start();
  await lab.joinGroup('a1', GROUP);
  await lab.joinGroup('b1', GROUP);
}, 120000);

afterAll(async () => {
  await lab?.dispose();
}, 60000);

const record = (i: number): NodeRecord =>
  lab.directory.nodes.find((n) => n.name === lab.topology.nodes[i]!.name)!;

const authenticated = async (i: number): Promise<number> =>
  ((await lab.agentStats(i)) as { dataplane: { datagramsAuthenticated: number } }).dataplane
    .datagramsAuthenticated;

/** One message each way; both delivered exactly once; the wire versions the underlay carried. */
async function bothWays(): Promise<number[]> {
  const there = await lab.sendTo('a1', GROUP);
  const back = await lab.sendTo('b1', GROUP);
  expect(await arrived(lab, 'b1', there)).toBe(1);
  expect(await arrived(lab, 'a1', back)).toBe(1);
  const carried = await waitFor(
    () => {
      const d = [...capturedDatagrams(lab, there), ...capturedDatagrams(lab, back)];
      return d.length === 2 && d;
    },
    { what: 'both datagrams in the underlay capture' },
  );
  return carried.map((d) => d[2]!);
}

it('delivers both ways in version 1 while one node is not upgraded', async () => {
  expect(record(0).wireVersion).toBeUndefined();
  expect(record(1).wireVersion).toBe(2);
  for (let i = 0; i < 3; i++) expect(await bothWays()).toEqual([1, 1]);
  expect(await authenticated(0)).toBe(0);
  expect(await authenticated(1)).toBe(0);
  for (const i of [0, 1])
    expect(Object.keys(await drops(lab, i)).filter((k) => /key|tag|v1|version|replay/.test(k))).toEqual([]);
});

it('seals both ways once the last node is upgraded in place', async () => {
  await lab.restartAgent(0, []);
  await waitFor(() => record(0).wireVersion === 2, { what: 'node 0 to advertise version 2' });
  // The peers switch as they see the new record; then every message crosses once, sealed.
  await waitFor(
    async () => {
      const v = await bothWays();
      return v.every((x) => x === 2);
    },
    { what: 'both directions in version 2' },
  );
  for (let i = 0; i < 3; i++) expect(await bothWays()).toEqual([2, 2]);
  expect(await authenticated(0)).toBeGreaterThan(0);
  expect(await authenticated(1)).toBeGreaterThan(0);
});
