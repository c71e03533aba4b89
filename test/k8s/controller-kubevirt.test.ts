// VMI label selectors on a real apiserver (a private cluster: it serves a kubevirt.io API, which the
// shared one must not). KubeVirt itself cannot run here; its VirtualMachineInstance CRD is stood in by a
// minimal one of the same group, version and kind, which is all the controller reads (labels).
// Also a live migration as the reports show it: the VM's endpoint moves from one node to another.
import { stringify } from 'yaml';
import { Controller } from '../../pkg/controller/controller';
import { ApiClient } from '../../pkg/k8s/client';
import { connectionFromKubeconfig } from '../../pkg/k8s/kubeconfig';
import type { MembershipReport, MulticastGroup, ReportEndpoint } from '../../pkg/k8s/types';
import { createNamespace, ensureCluster, stopCluster, type Cluster } from '../harness/k8s';
import { eventually, installCrds } from './fixtures';

let cluster: Cluster;
let ns: string;
let api: ApiClient;
let controller: Controller | undefined;

const apply = (obj: object): Promise<string> =>
  cluster.kubectl(['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: stringify(obj) });

const vmiCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'virtualmachineinstances.kubevirt.io' },
  spec: {
    group: 'kubevirt.io',
    scope: 'Namespaced',
    names: {
      kind: 'VirtualMachineInstance',
      plural: 'virtualmachineinstances',
      singular: 'virtualmachineinstance',
    },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      },
    ],
  },
};

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

async function members(): Promise<string[]> {
  const g = await api.get<MulticastGroup>(`/apis/castnet.io/v1alpha1/namespaces/${ns}/multicastgroups/dbs`);
  return (g.status?.members ?? []).map((m) => `${m.node}/${m.endpointID}:${m.via}:${m.vm}`);
}

const membersAre = (want: string[]) =>
  eventually(`members ${want.join(', ')}`, async () => {
    const got = await members();
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`got ${got.join(', ')}`);
    return got;
  });

beforeAll(async () => {
  cluster = await ensureCluster({ name: 'cnctlkv' });
  await installCrds(cluster);
  await apply(vmiCrd);
  await cluster.kubectl(['wait', '--for=condition=Established', 'crd/virtualmachineinstances.kubevirt.io']);
  ns = await createNamespace(cluster, 'cnkv');
  api = new ApiClient(connectionFromKubeconfig(cluster.kubeconfigPath));
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

afterAll(async () => {
  await controller?.stop();
  api?.close();
  if (cluster) await stopCluster(cluster);
}, 120_000);

test('a VMI selector follows the VM across a live migration and its labels', async () => {
  controller = new Controller(connectionFromKubeconfig(cluster.kubeconfigPath), {
    identity: 'kv-test',
    leaseNamespace: ns,
    debounceMs: 20,
    watchVmis: 'auto',
  });
  await controller.start();
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
