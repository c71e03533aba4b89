// A VM keeps its IP (docs/kubevirt.md "Addresses") on a real apiserver, with two agents' Kubernetes
// lookup adapters running under the chart's agent role, and Kubernetes' own garbage collector
// (kube-controller-manager, only its garbagecollector controller) deleting what the VM owned.
// KubeVirt cannot run here: its VirtualMachine and VirtualMachineInstance CRDs are stood in by
// minimal ones of the same group, version and kind. Each ADD runs what the agent's prepareAdd runs
// for a VM's pod with castnet IPAM (planVmAddresses, castnet IPAM, checkUnique, the reservation),
// without wiring a network namespace. A private cluster: it serves a kubevirt.io API.
import { jest } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { checkUnique } from '../../pkg/agent/identity.js';
import { planVmAddresses } from '../../pkg/agent/vm-address.js';
import { CniError, CniErrorCode } from '../../pkg/cni/types.js';
import { allocateAddresses, poolsOf } from '../../pkg/ipam/castnet.js';
import { addressHolders, reservedAddresses } from '../../pkg/ipam/reservations.js';
import { loadKubeConfig } from '../../pkg/k8s/config.js';
import { crd } from '../../pkg/k8s/resources.js';
import { silentLogger } from '../../pkg/log/log.js';
import { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import type { Directory, VmRef } from '../../pkg/lookup/port.js';
import { run, stop } from '../../pkg/sys/exec.js';
import {
  createNamespace,
  ensureCluster,
  serviceAccountKubeconfig,
  stopCluster,
  upstreamBin,
  type Cluster,
} from '../harness/k8s.js';
import { until } from './adapter-helpers.js';
import { applyObject, eventually, installCrds, installVmiCrd } from './fixtures.js';

jest.setTimeout(180_000);

const NETWORK = 'vmnet';
const log = silentLogger;

let cluster: Cluster;
let api: CustomObjectsApi;
let gc: ChildProcess | undefined;
let gcLog = '';
let ns: string;
let tenant: string;
let outsider: string;
const lookups: KubernetesLookup[] = [];
let nodeA: KubernetesLookup;
let nodeB: KubernetesLookup;

/** Stand-in for KubeVirt's VirtualMachine CRD: any fields. */
async function installVmCrd(c: Cluster): Promise<void> {
  await applyObject(c, {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'virtualmachines.kubevirt.io' },
    spec: {
      group: 'kubevirt.io',
      scope: 'Namespaced',
      names: { kind: 'VirtualMachine', plural: 'virtualmachines', singular: 'virtualmachine' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  });
  await c.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/virtualmachines.kubevirt.io',
  ]);
}

/** A VirtualMachine and the VMI its controller runs (owned by it, as KubeVirt's is); the VMI's UID. */
async function startVm(namespace: string, name: string, withVm = true): Promise<string> {
  let owner: object[] = [];
  if (withVm) {
    await applyObject(cluster, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: { name, namespace },
      spec: { running: true },
    });
    const uid = await cluster.kubectl([
      '-n',
      namespace,
      'get',
      'virtualmachines.kubevirt.io',
      name,
      '-o',
      'jsonpath={.metadata.uid}',
    ]);
    owner = [
      {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachine',
        name,
        uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ];
  }
  await applyObject(cluster, {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { name, namespace, ownerReferences: owner },
  });
  return cluster.kubectl([
    '-n',
    namespace,
    'get',
    'virtualmachineinstances.kubevirt.io',
    name,
    '-o',
    'jsonpath={.metadata.uid}',
  ]);
}

/** A restart as KubeVirt does it: the VMI is deleted and the VM's controller makes a new one. */
async function restartVm(namespace: string, name: string): Promise<string> {
  await cluster.kubectl([
    '-n',
    namespace,
    'delete',
    'virtualmachineinstances.kubevirt.io',
    name,
    '--wait=true',
  ]);
  return startVm(namespace, name);
}

const directory = (l: KubernetesLookup): Directory => {
  if (!l.directory) throw new Error('the adapter has no directory yet');
  return l.directory;
};

/**
 * What node `poolIndex`'s agent does at the ADD of VM `vm`'s pod with castnet IPAM (node-agent.ts
 * prepareAdd, node-manager.ts intent): the VM's reservation, else an allocation from the node's pool
 * skipping every reserved address; the uniqueness check; the reservation of what it got.
 */
async function addVmPod(
  lookup: KubernetesLookup,
  node: string,
  poolIndex: number,
  vm: VmRef,
  requested?: string[],
  /** Awaited between reading the reservation and writing one: lets a test interleave two ADDs. */
  beforeReserve?: () => Promise<void>,
): Promise<string[]> {
  const d = directory(lookup);
  const network = d.networks.find((n) => n.name === NETWORK)!;
  const holders = addressHolders(d.networks, d.reservations ?? []);
  const status = await lookup.vmiPods(vm.namespace, vm.name);
  const plan = await planVmAddresses({
    lookup,
    vm,
    owner: status?.owner,
    network: NETWORK,
    requested,
    holders,
    log,
  });
  checkUnique(d, { node, network: NETWORK, ips: plan.ips, vm }, holders);
  const ips =
    plan.ips ??
    allocateAddresses({
      network,
      pools: poolsOf(network, poolIndex),
      used: reservedAddresses(holders).get(NETWORK) ?? new Set(),
      cursors: new Map(),
      poolIndex,
    });
  await beforeReserve?.();
  await plan.reserve?.(ips);
  return ips;
}

/** Resolves once the wall clock is in a later second than `ms` (creation times are whole seconds). */
async function secondAfter(ms: number): Promise<void> {
  const wait = Math.floor(ms / 1000) * 1000 + 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait + 50));
}

const reservationOf = (l: KubernetesLookup, vm: VmRef) =>
  directory(l).reservations?.find((r) => r.vm.namespace === vm.namespace && r.vm.name === vm.name);

beforeAll(async () => {
  cluster = await ensureCluster({ name: 'cnvmaddr' });
  await installCrds(cluster);
  await installVmiCrd(cluster);
  await installVmCrd(cluster);
  api = loadKubeConfig(cluster.kubeconfigPath).makeApiClient(CustomObjectsApi);
  // Kubernetes' garbage collector, started after the CRDs so that it watches them from the start.
  gc = spawn(
    path.join(upstreamBin, 'kube-controller-manager'),
    [
      '--kubeconfig',
      cluster.kubeconfigPath,
      '--controllers=garbagecollector',
      '--leader-elect=false',
      '--secure-port=0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  gc.stderr!.on('data', (c: Buffer) => (gcLog = (gcLog + c.toString()).slice(-20_000)));
  ns = await createNamespace(cluster, 'vms');
  tenant = await createNamespace(cluster, 'tenant');
  outsider = await createNamespace(cluster, 'outsider');
  await applyObject(cluster, {
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VirtualNetwork',
    metadata: { name: NETWORK },
    spec: { networkID: 31, subnets: ['10.31.0.0/16'], allowedNamespaces: [ns, tenant] },
  });
  // Both agents run under the chart's agent role.
  const { stdout: rbac } = await run(path.join(upstreamBin, 'helm'), [
    ...['template', 'cn', path.resolve(import.meta.dirname, '../../charts/castnet')],
    ...['--namespace', ns, '--kube-version', '1.34.0', '--show-only', 'templates/rbac-agent.yaml'],
  ]);
  await cluster.kubectl(['apply', '-f', '-'], { input: rbac });
  const kubeconfig = await serviceAccountKubeconfig(cluster, ns, 'cn-agent');
  for (const node of ['node-a', 'node-b']) {
    const l = new KubernetesLookup({
      kubeConfig: loadKubeConfig(kubeconfig),
      node,
      watchVmis: false,
      onError: (err, what) => log.warn(what, { err }),
    });
    lookups.push(l);
    await l.start();
  }
  [nodeA, nodeB] = lookups as [KubernetesLookup, KubernetesLookup];
  await until(nodeA, (d) => d.networks.some((n) => n.name === NETWORK));
  await until(nodeB, (d) => d.networks.some((n) => n.name === NETWORK));
});

afterAll(async () => {
  for (const l of lookups) await l.dispose();
  if (gc) await stop(gc);
  if (cluster) await stopCluster(cluster);
});

test('a VM restarted on another node gets its address back; every node skips it meanwhile', async () => {
  const vm = { namespace: ns, name: 'db-0' };
  await startVm(ns, 'db-0');
  const first = await addVmPod(nodeA, 'node-a', 1, vm);
  expect(first).toEqual(['10.31.1.1/16']);
  // The reservation is the VM's, owned by its VirtualMachine.
  const stored = (await api.getNamespacedCustomObject({
    ...crd('vmAddress'),
    namespace: ns,
    name: `db-0.${NETWORK}`,
  })) as {
    metadata: { ownerReferences: { kind: string; name: string }[] };
    spec: unknown;
  };
  expect(stored.spec).toEqual({ network: NETWORK, vmi: 'db-0', ips: ['10.31.1.1'] });
  expect(stored.metadata.ownerReferences.map((o) => `${o.kind}/${o.name}`)).toEqual(['VirtualMachine/db-0']);

  // Its pod goes (nothing for castnet to do: a DEL never touches reservations), the VMI is replaced.
  await restartVm(ns, 'db-0');
  // Node A's next pod, from the same pool, does not get the VM's address while the VM is down.
  await until(nodeA, (d) => (d.reservations ?? []).some((r) => r.vm.name === 'db-0'));
  const other = await addVmPod(nodeA, 'node-a', 1, { namespace: ns, name: 'web-0' });
  expect(other).toEqual(['10.31.1.2/16']);
  // The VM comes back on node B, whose pool is another block: it gets its address back.
  await until(nodeB, (d) => (d.reservations ?? []).length >= 2);
  expect(await addVmPod(nodeB, 'node-b', 2, vm)).toEqual(['10.31.1.1']);
  expect(await addVmPod(nodeB, 'node-b', 2, { namespace: ns, name: 'web-1' })).toEqual(['10.31.2.1/16']);
});

test('of two nodes reserving for one VM at the same moment, one wins and the other ADD is retried', async () => {
  const vm = { namespace: ns, name: 'race-0' };
  await startVm(ns, 'race-0');
  // Both ADDs read "no reservation" before either writes one: the moment the test is about. (Left
  // to chance, the second often reads the first's reservation and rightly takes its address.)
  let arrived = 0;
  let bothRead!: () => void;
  const barrier = new Promise<void>((resolve) => (bothRead = resolve));
  const meet = async (): Promise<void> => {
    if (++arrived === 2) bothRead();
    await barrier;
  };
  const results = await Promise.allSettled([
    addVmPod(nodeA, 'node-a', 1, vm, undefined, meet),
    addVmPod(nodeB, 'node-b', 2, vm, undefined, meet),
  ]);
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect([won.length, lost.length]).toEqual([1, 1]);
  expect(lost[0]!.reason).toBeInstanceOf(CniError);
  expect((lost[0]!.reason as CniError).code).toBe(CniErrorCode.TryAgainLater);
  expect((lost[0]!.reason as CniError).message).toMatch(
    new RegExp(
      `address reservation of VM ${ns}/race-0 on network "vmnet": another node reserved .* for it at the same moment`,
    ),
  );
  // The retry gets the winner's address.
  const winner = (won[0] as PromiseFulfilledResult<string[]>).value.map((a) => a.split('/')[0]);
  expect(await addVmPod(nodeB, 'node-b', 2, vm)).toEqual(winner);
});

test("another namespace cannot take a VM's reserved address", async () => {
  const vm = { namespace: ns, name: 'db-1' };
  await startVm(ns, 'db-1');
  const [ip] = await addVmPod(nodeA, 'node-a', 1, vm);
  const plain = ip!.split('/')[0]!;
  await until(nodeB, (d) => (d.reservations ?? []).some((r) => r.vm.name === 'db-1'));
  // A tenant's VM asking for it (runtimeConfig.ips) is refused, naming the VM that holds it.
  await startVm(tenant, 'thief');
  const refused = addVmPod(nodeB, 'node-b', 2, { namespace: tenant, name: 'thief' }, [`${plain}/16`]);
  await expect(refused).rejects.toThrow(
    `runtimeConfig.ips: ${plain}/16 is reserved for VM ${ns}/db-1 on network "vmnet" until that VM is deleted`,
  );
  // A VMAddress written by hand in the tenant's namespace claiming it loses to the older one: the
  // tenant's VM gets a fresh address, and the hand-written object changes nothing for others.
  // "Older" is at the apiserver's resolution, a second (a tie goes by namespace and name): the
  // forgery is made in a later second than the VM's reservation.
  await secondAfter(reservationOf(nodeB, vm)!.createdAt!);
  await applyObject(cluster, {
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VMAddress',
    metadata: { name: `forged.${NETWORK}`, namespace: tenant },
    spec: { network: NETWORK, vmi: 'forged', ips: [plain] },
  });
  await startVm(tenant, 'forged');
  await until(nodeB, (d) => (d.reservations ?? []).some((r) => r.vm.name === 'forged'));
  const forged = await addVmPod(nodeB, 'node-b', 2, { namespace: tenant, name: 'forged' });
  expect(forged[0]!.split('/')[0]).not.toBe(plain);
  expect(await addVmPod(nodeA, 'node-a', 1, vm)).toEqual([plain]);
  // A namespace the network does not allow reserves nothing, not even by writing the object.
  await applyObject(cluster, {
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VMAddress',
    metadata: { name: `squat.${NETWORK}`, namespace: outsider },
    spec: { network: NETWORK, vmi: 'squat', ips: ['10.31.2.200'] },
  });
  const d = await until(nodeB, (x) => (x.reservations ?? []).some((r) => r.vm.name === 'squat'));
  const holders = addressHolders(d.networks, d.reservations ?? []);
  expect(reservedAddresses(holders).get(NETWORK)?.has('10.31.2.200')).toBe(false);
});

test('deleting the VM releases its address (Kubernetes garbage collector); deleting a VMI without a VM does too', async () => {
  const vm = { namespace: ns, name: 'gone-0' };
  await startVm(ns, 'gone-0');
  const [ip] = await addVmPod(nodeA, 'node-a', 1, vm);
  await until(nodeA, () => reservationOf(nodeA, vm) !== undefined);
  await cluster.kubectl(['-n', ns, 'delete', 'virtualmachines.kubevirt.io', 'gone-0', '--wait=false']);
  await eventually(
    `VMAddress ${ns}/gone-0.${NETWORK} deleted with its VM (kube-controller-manager log: ${gcLog.slice(-2000)})`,
    async () => (reservationOf(nodeA, vm) === undefined ? true : undefined),
    60_000,
  );
  expect(
    reservedAddresses(addressHolders(directory(nodeA).networks, directory(nodeA).reservations ?? [])).get(
      NETWORK,
    ),
  ).not.toContain(ip!.split('/')[0]);

  // A VMI run without a VirtualMachine owns its reservation itself.
  const bare = { namespace: ns, name: 'bare-0' };
  await startVm(ns, 'bare-0', false);
  await addVmPod(nodeB, 'node-b', 2, bare);
  await until(nodeB, () => reservationOf(nodeB, bare) !== undefined);
  await cluster.kubectl([
    '-n',
    ns,
    'delete',
    'virtualmachineinstances.kubevirt.io',
    'bare-0',
    '--wait=false',
  ]);
  await eventually(
    `VMAddress ${ns}/bare-0.${NETWORK} deleted with its VMI`,
    async () => (reservationOf(nodeB, bare) === undefined ? true : undefined),
    60_000,
  );
});

test('without the VMAddress CRD (helm upgrade installs none) an agent starts, says so, and reserves nothing', async () => {
  await cluster.kubectl(['delete', 'crd', 'vmaddresses.castnet.io', '--wait=true']);
  const errors: string[] = [];
  const l = new KubernetesLookup({
    kubeConfig: loadKubeConfig(cluster.kubeconfigPath),
    node: 'node-c',
    watchVmis: false,
    onError: (err) => errors.push(String(err)),
  });
  lookups.push(l);
  await l.start();
  const d = await until(l, (x) => x.networks.some((n) => n.name === NETWORK));
  expect(d.reservations).toBeUndefined();
  expect(errors.join('\n')).toContain(
    'the VMAddress CRD (vmaddresses.castnet.io) is not installed: VMs get new addresses at each start; apply charts/castnet/crds/',
  );
  const vm = { namespace: ns, name: 'db-0' };
  expect(await l.addressReservation(vm, NETWORK)).toBeUndefined();
  expect(await l.reserveAddresses({ network: NETWORK, vm, ips: ['10.31.3.1'] })).toBeUndefined();
  // The ADD goes on, with an address from the node's pool.
  expect(await addVmPod(l, 'node-c', 3, vm)).toEqual(['10.31.3.1/16']);
});
