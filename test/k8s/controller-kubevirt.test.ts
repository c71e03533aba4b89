// VMI label selectors on a real apiserver (a private cluster: it serves a kubevirt.io API, which the
// shared one must not). KubeVirt itself cannot run here; its VirtualMachineInstance CRD is stood in by a
// minimal one of the same group, version and kind, which is all the controller reads (labels).
// Also a live migration as the reports show it: the VM's endpoint moves from one node to another.
// And the agents' side: each node's lookup adapter selects the VMI endpoints it hosts by the VMI's
// labels and reports them, agreeing with the controller's status.
import { Controller } from '../../pkg/controller/controller.js';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import type { EndpointRecord } from '../../pkg/lookup/port.js';
import { until } from './adapter-helpers.js';
import type { MembershipReport, ReportEndpoint } from '../../pkg/k8s/types.js';
import {
  clusterKubeConfig,
  createNamespace,
  ensureCluster,
  stopCluster,
  type Cluster,
} from '../harness/k8s.js';
import { applyObject, groupMembersAre, installCrds, installVmiCrd } from './fixtures.js';

let cluster: Cluster;
let ns: string;
let api: CustomObjectsApi;
let controller: Controller | undefined;

const apply = (obj: object) => applyObject(cluster, obj);

function launcherEndpoint(id: number, pod: string): ReportEndpoint {
  return {
    endpointID: id,
    network: 'vms',
    mac: '02:00:00:00:aa:01', // KubeVirt keeps the VM's MAC across migration
    ips: ['10.80.0.10'],
    pod: { namespace: ns, name: pod },
    vm: { namespace: ns, name: 'db-0' },
  };
}

function report(node: string, endpoints: ReportEndpoint[]): MembershipReport {
  return {
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MembershipReport',
    metadata: { name: node },
    spec: { node, underlay: { address: node === 'src' ? '192.0.2.1' : '192.0.2.2', port: 4790 }, endpoints },
  };
}

const launcherPod = (name: string, node: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name,
    namespace: ns,
    labels: { 'kubevirt.io': 'virt-launcher', 'vm.kubevirt.io/name': 'db-0', 'vmi.kubevirt.io/id': 'db-0' },
    annotations: { 'kubevirt.io/domain': 'db-0' },
  },
  spec: { nodeName: node, containers: [{ name: 'compute', image: 'example.invalid/virt-launcher' }] },
});

const membersAre = (want: string[], group = 'dbs') =>
  groupMembersAre(api, ns, group, want, (m) => `${m.node}/${m.endpointID}:${m.via}:${m.vm}`);

beforeAll(async () => {
  cluster = await ensureCluster({ name: 'cnctlkv' });
  await installCrds(cluster);
  await installVmiCrd(cluster);
  ns = await createNamespace(cluster, 'cnkv');
  api = clusterKubeConfig(cluster).makeApiClient(CustomObjectsApi);
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VirtualNetwork',
    metadata: { name: 'vms' },
    spec: { networkID: 80, subnets: ['10.80.0.0/16'] },
  });
  for (const n of ['src', 'dst']) await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
  await apply({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { name: 'db-0', namespace: ns, labels: { role: 'db' } },
    spec: {},
  });
  await apply(launcherPod('virt-launcher-db-0-aaaaa', 'src'));
  await apply(report('src', [launcherEndpoint(1, 'virt-launcher-db-0-aaaaa')]));
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MulticastGroup',
    metadata: { name: 'dbs', namespace: ns },
    spec: { network: 'vms', address: '239.8.8.8', selectors: { vmis: { matchLabels: { role: 'db' } } } },
  });
}, 300_000);

const adapters: KubernetesLookup[] = [];

/** The controller both tests read status from (started once). */
async function startController(): Promise<void> {
  if (controller) return;
  controller = new Controller(clusterKubeConfig(cluster), {
    identity: 'kv-test',
    leaseNamespace: ns,
    debounceMs: 20,
    watchVmis: 'auto',
  });
  await controller.start();
}

afterAll(async () => {
  for (const a of adapters) await a.dispose();
  await controller?.dispose();
  if (cluster) await stopCluster(cluster);
}, 120_000);

test('a VMI selector follows the VM across a live migration and its labels', async () => {
  await startController();
  await membersAre([`src/1:selector:${ns}/db-0`]);

  // Migration: the target virt-launcher pod on "dst" gets the VM's endpoint; both exist for a while.
  await apply(launcherPod('virt-launcher-db-0-bbbbb', 'dst'));
  await apply(report('dst', [launcherEndpoint(7, 'virt-launcher-db-0-bbbbb')]));
  await membersAre([`dst/7:selector:${ns}/db-0`, `src/1:selector:${ns}/db-0`]);
  // The source pod goes away when the migration completes: only the target remains a member.
  await cluster.kubectl([
    '-n',
    ns,
    'delete',
    'pod',
    'virt-launcher-db-0-aaaaa',
    '--grace-period=0',
    '--force',
  ]);
  await membersAre([`dst/7:selector:${ns}/db-0`]);

  // The VMI no longer matches: the group empties.
  await cluster.kubectl(['-n', ns, 'label', 'virtualmachineinstance', 'db-0', 'role=web', '--overwrite']);
  await membersAre([]);
});

test('each agent selects the VMI endpoints it hosts by the VMI’s labels, as the controller does', async () => {
  await apply({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { name: 'cache-0', namespace: ns, labels: { role: 'cache' } },
    spec: {},
  });
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MulticastGroup',
    metadata: { name: 'caches', namespace: ns },
    spec: { network: 'vms', address: '239.8.8.9', selectors: { vmis: { matchLabels: { role: 'cache' } } } },
  });
  const agent = (node?: string): KubernetesLookup => {
    const a = new KubernetesLookup({ kubeConfig: clusterKubeConfig(cluster), node });
    adapters.push(a);
    void a.start();
    return a;
  };
  await startController();
  const observer = agent();
  const endpointOn = (node: string, id: number, pod: string): EndpointRecord => ({
    network: 'vms',
    node,
    endpointId: id,
    mac: '02:00:00:00:bb:01',
    ips: ['10.80.0.20'],
    pod: { namespace: ns, name: pod },
    vm: { namespace: ns, name: 'cache-0' },
  });
  const host = async (node: string, last: number, id: number, pod: string): Promise<void> => {
    await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
    await apply({ ...launcherPod(pod, node), metadata: { ...launcherPod(pod, node).metadata, labels: {} } });
    const a = agent(node);
    await a.registerNode({ name: node, address: `192.0.2.${last}`, port: 4790, poolIndex: last });
    await a.publishEndpoints(node, [endpointOn(node, id, pod)]);
    await a.reportMemberships(node, []);
  };
  const reported = (want: string[]) =>
    until(
      observer,
      (d) =>
        d.memberships
          .filter((m) => m.group === '239.8.8.9')
          .map((m) => `${m.node}/${m.endpointId}:${m.via}`)
          .sort()
          .join() === want.join(),
    );

  await host('kv-a', 11, 1, 'virt-launcher-cache-0-aaaaa');
  await reported(['kv-a/1:selector']);
  // Mid-migration both nodes host an endpoint of the VM; the data plane's handoff picks the live one.
  await host('kv-b', 12, 7, 'virt-launcher-cache-0-bbbbb');
  await reported(['kv-a/1:selector', 'kv-b/7:selector']);
  await membersAre([`kv-a/1:selector:${ns}/cache-0`, `kv-b/7:selector:${ns}/cache-0`], 'caches');

  await cluster.kubectl(['-n', ns, 'label', 'virtualmachineinstance', 'cache-0', 'role=web', '--overwrite']);
  await reported([]);
  await membersAre([], 'caches');
});
