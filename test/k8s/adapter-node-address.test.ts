// An agent's Kubernetes lookup adapter ignores a MembershipReport whose underlay address is not one
// of its Node's own (status.addresses, InternalIP or ExternalIP): a compromised agent cannot point
// the other nodes' traffic at a host its node does not own. On a private apiserver, with Node
// objects and reports written as the admin.
import { jest } from '@jest/globals';
import { loadKubeConfig } from '../../pkg/k8s/config.js';
import { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import type { Directory } from '../../pkg/lookup/port.js';
import { ensureCluster, stopCluster, type Cluster } from '../harness/k8s.js';
import { until } from './adapter-helpers.js';
import { installCrds } from './fixtures.js';

jest.setTimeout(180_000);

const tag = `cnna${process.pid}`;
const nodeA = `${tag}-a`;
const nodeB = `${tag}-b`;
const unknown = `${tag}-nonode`;
const observer = `${tag}-obs`;
let cluster: Cluster;
let lookup: KubernetesLookup | undefined;

const apply = (obj: object): Promise<string> =>
  cluster.kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=test', '-f', '-'], {
    input: JSON.stringify(obj),
  });

async function node(name: string, address: string): Promise<void> {
  await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name } });
  await cluster.kubectl([
    'patch',
    'node',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({
      status: {
        addresses: [
          { type: 'Hostname', address: '192.0.2.200' }, // not an underlay address type
          { type: 'InternalIP', address },
        ],
      },
    }),
  ]);
}

const report = (name: string, address: string, ip: string) =>
  apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MembershipReport',
    metadata: { name },
    spec: {
      node: name,
      underlay: { address, port: 4790 },
      endpoints: [{ endpointID: 1, network: 'blue', mac: '02:00:00:00:00:01', ips: [ip] }],
    },
  });

const nodesOf = (d: Directory): string[] =>
  d.nodes
    .map((n) => `${n.name}@${n.address}`)
    .filter((n) => n.startsWith(tag))
    .sort();

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnna${process.pid}` });
  await installCrds(cluster);
  await node(nodeA, '192.0.2.1');
  await node(nodeB, '192.0.2.2');
});

afterAll(async () => {
  await lookup?.dispose();
  if (cluster) await stopCluster(cluster);
});

test('reports whose underlay address is not their Node’s own are ignored, and counted', async () => {
  await report(nodeA, '192.0.2.1', '10.1.0.1');
  await report(nodeB, '192.0.2.1', '10.1.0.2'); // node A's address: foreign to node B
  await report(unknown, '192.0.2.3', '10.1.0.3'); // no Node object: nothing to compare with
  // An agent's adapter (`node` set): it watches the Nodes.
  lookup = new KubernetesLookup({ kubeConfig: loadKubeConfig(cluster.kubeconfigPath), node: observer });
  void lookup.start();
  const d = await until(lookup, (x) => nodesOf(x).length >= 2);
  expect(nodesOf(d)).toEqual([`${nodeA}@192.0.2.1`, `${unknown}@192.0.2.3`]);
  expect(d.endpoints.filter((e) => e.node === nodeB)).toEqual([]);
  expect(lookup.stats.foreignUnderlayIgnored).toBe(1);

  // Node B reports its own address: it is in.
  await report(nodeB, '192.0.2.2', '10.1.0.2');
  await until(lookup, (x) => nodesOf(x).includes(`${nodeB}@192.0.2.2`));

  // Node A's address changes under its report: the report is out until it follows.
  await node(nodeA, '192.0.2.11');
  const after = await until(lookup, (x) => !nodesOf(x).some((n) => n.startsWith(nodeA)));
  expect(after.endpoints.filter((e) => e.node === nodeA)).toEqual([]);
  expect(lookup.stats.foreignUnderlayIgnored).toBe(2);
});
