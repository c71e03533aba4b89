// Selector members on the shared test apiserver: each node's adapter evaluates MulticastGroups' pod
// selectors against its own node's pods and reports the selected endpoints via selector, so another
// node's adapter (the directory every agent delivers from) has them; relabelling and deleting pods
// follow. No kubelet runs: Pods are objects with spec.nodeName set.
import { jest } from '@jest/globals';
import { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import type { Directory, EndpointRecord } from '../../pkg/lookup/port.js';
import { clusterKubeConfig, createNamespace, ensureCluster, type Cluster } from '../harness/k8s.js';
import { until } from './adapter-helpers.js';
import { installCrds, nodeRegistration } from './fixtures.js';

jest.setTimeout(120_000);

const tag = `cnas${process.pid}`;
const nodeA = `${tag}-a`;
const nodeB = `${tag}-b`;
const GROUP = '239.7.7.7';
let cluster: Cluster;
let ns: string;
const open: KubernetesLookup[] = [];

const agentOf = (node?: string): KubernetesLookup => {
  const l = new KubernetesLookup({ kubeConfig: clusterKubeConfig(cluster), node });
  open.push(l);
  void l.start();
  return l;
};

async function createPod(name: string, node: string, labels: Record<string, string>): Promise<string> {
  const pod = JSON.parse(
    await cluster.kubectl(['create', '-o', 'json', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels },
        spec: { nodeName: node, containers: [{ name: 'c', image: 'castnet.invalid/none' }] },
      }),
    }),
  ) as { metadata: { uid: string } };
  return pod.metadata.uid;
}

const endpointOf = (node: string, endpointId: number, pod: string, uid: string): EndpointRecord => ({
  network: 'blue',
  node,
  endpointId,
  mac: `02:00:00:00:01:${endpointId.toString(16).padStart(2, '0')}`,
  ips: [`10.77.0.${endpointId}`],
  pod: { namespace: ns, name: pod, uid },
});

/** The directory's memberships of GROUP as "node/endpoint:via". */
const members = (d: Directory): string =>
  d.memberships
    .filter((m) => m.group === GROUP)
    .map((m) => `${m.node}/${m.endpointId}:${m.via ?? 'igmp'}`)
    .sort()
    .join(' ');

beforeAll(async () => {
  cluster = await ensureCluster();
  await installCrds(cluster);
  ns = await createNamespace(cluster, tag);
  // Node objects: a controller another test runs on the shared cluster collects reports of nodes that have none.
  for (const name of [nodeA, nodeB])
    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name } }),
    });
});

afterAll(async () => {
  for (const l of open.splice(0)) await l.dispose();
  await cluster
    ?.kubectl(['delete', 'membershipreport', nodeA, nodeB, '--ignore-not-found'])
    .catch(() => undefined);
  await cluster?.kubectl(['delete', 'node', nodeA, nodeB, '--ignore-not-found']).catch(() => undefined);
  await cluster?.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
});

test('each node reports its own selected endpoints; every directory has them; labels and deletions follow', async () => {
  const uid1 = await createPod('p1', nodeA, { app: 'feed' });
  const uid2 = await createPod('p2', nodeA, { app: 'other' });
  const uid3 = await createPod('p3', nodeB, { app: 'feed' });
  await cluster.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'MulticastGroup',
      metadata: { name: 'by-label', namespace: ns },
      spec: { network: 'blue', address: GROUP, selectors: { pods: { matchLabels: { app: 'feed' } } } },
    }),
  });

  const a = agentOf(nodeA);
  const b = agentOf(nodeB);
  const observer = agentOf();
  await a.registerNode(nodeRegistration(nodeA, 1));
  // p2 also joined by IGMP; an endpoint naming a pod of another node is not A's to select.
  await a.publishEndpoints(nodeA, [
    endpointOf(nodeA, 1, 'p1', uid1),
    endpointOf(nodeA, 2, 'p2', uid2),
    endpointOf(nodeA, 4, 'p3', uid3),
  ]);
  await a.reportMemberships(nodeA, [
    { network: 'blue', group: GROUP, node: nodeA, endpointId: 2, filter: { mode: 'exclude', sources: [] } },
  ]);
  await b.registerNode(nodeRegistration(nodeB, 2));
  await b.publishEndpoints(nodeB, [endpointOf(nodeB, 3, 'p3', uid3)]);
  await b.reportMemberships(nodeB, []);

  const want = async (expected: string): Promise<void> => {
    await until(observer, (d) => members(d) === expected);
  };
  await want(`${nodeA}/1:selector ${nodeA}/2:igmp ${nodeB}/3:selector`);

  // The stored report says how each member joined.
  const report = JSON.parse(await cluster.kubectl(['get', 'membershipreport', nodeA, '-o', 'json'])) as {
    spec: { memberships: { endpointID: number; via?: string }[] };
  };
  expect(report.spec.memberships.map((m) => `${m.endpointID}:${m.via ?? 'igmp'}`).sort()).toEqual([
    '1:selector',
    '2:igmp',
  ]);

  // Relabelling adds and removes selector members; an IGMP join and a selection of one endpoint coexist.
  await cluster.kubectl(['label', 'pod', '-n', ns, 'p2', 'app=feed', '--overwrite']);
  await cluster.kubectl(['label', 'pod', '-n', ns, 'p1', 'app-']);
  await want(`${nodeA}/2:igmp ${nodeA}/2:selector ${nodeB}/3:selector`);

  // A deleted pod's endpoint is selected no more, even before its endpoint is gone.
  await cluster.kubectl(['delete', 'pod', '-n', ns, 'p3', '--grace-period=0', '--force']);
  await want(`${nodeA}/2:igmp ${nodeA}/2:selector`);

  // Deleting the group withdraws its selector members.
  await cluster.kubectl(['delete', 'mcg', '-n', ns, 'by-label']);
  await want(`${nodeA}/2:igmp`);
});
