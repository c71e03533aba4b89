// The controller across a kube-apiserver restart (its own private cluster, since it takes the
// apiserver down): nothing is lost, no member is reported as leaving, and changes made after the
// restart are picked up through re-established watches.
import { Controller } from '../../pkg/controller/controller.js';
import { CustomObjectsApi } from '@kubernetes/client-node';
import type { MembershipReport } from '../../pkg/k8s/types.js';
import {
  clusterKubeConfig,
  createNamespace,
  ensureCluster,
  startApiserver,
  stopApiserver,
  stopCluster,
  type Cluster,
} from '../harness/k8s.js';
import { applyObject, groupMembersAre, installCrds } from './fixtures.js';
import { waitFor } from '../../pkg/base/async.js';

let cluster: Cluster;
let ns: string;
let api: CustomObjectsApi;
let controller: Controller | undefined;

const apply = (obj: object) => applyObject(cluster, obj);

function report(node: string, ids: number[], joins: number[]): MembershipReport {
  const i = node === 'n1' ? 1 : 2;
  return {
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MembershipReport',
    metadata: { name: node },
    spec: {
      node,
      underlay: { address: `192.0.2.${i}`, port: 4790 },
      endpoints: ids.map((id) => ({
        endpointID: id,
        network: 'red',
        mac: `02:00:00:00:0${i}:${id.toString(16).padStart(2, '0')}`,
        ips: [`10.70.${i}.${id}`],
      })),
      memberships: joins.map((id) => ({ network: 'red', group: '239.7.7.7', endpointID: id })),
    },
  };
}

const membersAre = (want: string[]) =>
  groupMembersAre(api, ns, 'g', want, (m) => `${m.node}/${m.endpointID}:${m.via}`);

beforeAll(async () => {
  cluster = await ensureCluster({ name: 'cnctlrestart' });
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'cnrst');
  api = clusterKubeConfig(cluster).makeApiClient(CustomObjectsApi);
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VirtualNetwork',
    metadata: { name: 'red' },
    spec: { networkID: 70, subnets: ['10.70.0.0/16'] },
  });
  for (const n of ['n1', 'n2']) await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
  await apply(report('n1', [1, 2], [1, 2]));
  await apply(report('n2', [1], [1]));
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MulticastGroup',
    metadata: { name: 'g', namespace: ns },
    spec: { network: 'red', address: '239.7.7.7', staticMembers: ['10.70.2.1'] },
  });
}, 300_000);

afterAll(async () => {
  await controller?.dispose();
  if (cluster) await stopCluster(cluster);
}, 120_000);

test('an apiserver restart loses no member, and later changes still arrive', async () => {
  controller = new Controller(clusterKubeConfig(cluster), {
    identity: 'restart-test',
    leaseNamespace: ns,
    debounceMs: 20,
    leaseDurationMs: 3000,
    renewDeadlineMs: 2000,
    retryPeriodMs: 300,
    watchVmis: false,
  });
  await controller.start();
  const before = await membersAre(['n1/1:igmp', 'n1/2:igmp', 'n2/1:static']);

  await stopApiserver(cluster);
  // Down until the report watch has failed and the leader has missed its renew deadline.
  await waitFor(() => controller!.restartsOf('reports') > 0 && !controller!.isLeader, {
    what: 'the report watch to fail and the leader to step down',
  });
  await startApiserver(cluster);

  // The report changes after the restart: the controller sees it only through a re-established watch.
  await apply(report('n2', [1, 2], [2]));
  await membersAre([...before, 'n2/2:igmp']);
  expect(controller.isLeader).toBe(true);
  expect(controller.restartsOf('reports')).toBeGreaterThan(0);

  // Nothing was ever reported as leaving: the outage was not mistaken for members going away.
  const events = JSON.parse(await cluster.kubectl(['-n', ns, 'get', 'events', '-o', 'json'])) as {
    items: Array<{ reason: string; message: string }>;
  };
  expect(events.items.filter((e) => e.reason === 'MembersLeft')).toEqual([]);
  expect(events.items.some((e) => e.reason === 'MembersJoined' && e.message.includes('n2'))).toBe(true);
});
