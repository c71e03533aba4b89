// Tenancy in the controller against a real kube-apiserver (pkg/resolve/tenancy.ts): a group in a
// namespace its network does not allow, and a later group of another namespace at an address already
// in use, get Accepted=False with the reason, a Warning Event, and no members; the address passes to
// the other namespace when its owner's group goes. Fails on main: there, both groups are Ready and
// list members, and static members of another namespace count.
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { Controller } from '../../pkg/controller/controller.js';
import { crd } from '../../pkg/k8s/resources.js';
import type { MulticastGroup } from '../../pkg/k8s/types.js';
import { sleep } from '../../pkg/base/async.js';
import { clusterKubeConfig, createNamespace, ensureCluster, type Cluster } from '../harness/k8s.js';
import { eventually, installCrds } from './fixtures.js';

const tag = randomBytes(3).toString('hex');
const shared = `ten-${tag}-shared`;
const closed = `ten-${tag}-closed`;
const node = `ten-${tag}-n1`;
let cluster: Cluster;
let nsA: string;
let nsB: string;
let api: CustomObjectsApi;
let controller: Controller | undefined;

const apply = (obj: object): Promise<string> =>
  cluster.kubectl(['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: stringify(obj) });

const group = (namespace: string, name: string, spec: Partial<MulticastGroup['spec']>) => ({
  apiVersion: 'castnet.io/v1alpha1',
  kind: 'MulticastGroup',
  metadata: { name, namespace },
  spec: { network: shared, address: '239.20.0.1', ...spec },
});

const getGroup = (namespace: string, name: string): Promise<MulticastGroup> =>
  api.getNamespacedCustomObject({ ...crd('multicastGroup'), namespace, name });

/** Waits until the group's condition `type` has `reason`; returns the group. */
const conditionOf = (namespace: string, name: string, type: string, reason: string) =>
  eventually(`${namespace}/${name} ${type}=${reason}`, async () => {
    const g = await getGroup(namespace, name);
    return g.status?.conditions?.find((c) => c.type === type && c.reason === reason) ? g : undefined;
  });

const members = (g: MulticastGroup): string[] => (g.status?.members ?? []).map((m) => m.pod ?? m.endpoint);

/** The Warning Events with `reason` about a group. */
async function warnings(namespace: string, name: string, reason: string): Promise<string[]> {
  const out = await cluster.kubectl([
    '-n',
    namespace,
    'get',
    'events',
    '--field-selector',
    `involvedObject.name=${name},reason=${reason},type=Warning`,
    '-o',
    'json',
  ]);
  return (JSON.parse(out) as { items: { message: string }[] }).items.map((e) => e.message);
}

beforeAll(async () => {
  const name = process.env.CASTNET_K8S_NAME;
  cluster = await ensureCluster(name ? { name } : {});
  await installCrds(cluster);
  nsA = await createNamespace(cluster, 'tena');
  nsB = await createNamespace(cluster, 'tenb');
  api = clusterKubeConfig(cluster).makeApiClient(CustomObjectsApi);
  for (const [i, [vn, allowed]] of [
    [shared, undefined],
    [closed, [nsA]],
  ].entries()) {
    await apply({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'VirtualNetwork',
      metadata: { name: vn, labels: { 'castnet-test': tag } },
      spec: {
        networkID: 200000 + parseInt(tag.slice(0, 4), 16) * 2 + i,
        subnets: ['10.70.0.0/16'],
        ...(allowed ? { allowedNamespaces: allowed } : {}),
      },
    });
  }
  await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { 'castnet-test': tag } } });
  for (const [ns, pod] of [
    [nsA, 'a1'],
    [nsB, 'b1'],
  ]) {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod, namespace: ns },
      spec: { nodeName: node, containers: [{ name: 'c', image: 'example.invalid/none' }] },
    });
  }
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MembershipReport',
    metadata: { name: node, labels: { 'castnet-test': tag } },
    spec: {
      node,
      underlay: { address: '192.0.2.1', port: 4790 },
      poolIndex: 1,
      endpoints: [
        {
          endpointID: 1,
          network: shared,
          mac: '02:00:0a:46:00:01',
          ips: ['10.70.0.1'],
          pod: { namespace: nsA, name: 'a1' },
        },
        {
          endpointID: 2,
          network: shared,
          mac: '02:00:0a:46:00:02',
          ips: ['10.70.0.2'],
          pod: { namespace: nsB, name: 'b1' },
        },
      ],
      memberships: [],
    },
  });
  await apply(group(nsA, 'stream', { staticMembers: ['10.70.0.1'] }));
  // creationTimestamp has a resolution of one second: B's group is the later one.
  await sleep(1100);
  await apply(
    group(nsB, 'grab', { staticMembers: ['10.70.0.2', '10.70.0.1'], allowedSenders: ['10.70.0.2'] }),
  );
  await apply(group(nsB, 'sneak', { network: closed, address: '239.20.0.2' }));
  await apply(group(nsB, 'pull', { address: '239.20.0.3', staticMembers: ['10.70.0.1', '10.70.0.2'] }));
  controller = new Controller(clusterKubeConfig(cluster), {
    identity: `tenancy-${tag}`,
    leaseNamespace: nsA,
    debounceMs: 20,
    eventBurst: 50,
    watchVmis: false,
  });
  await controller.start();
}, 240_000);

afterAll(async () => {
  await controller?.dispose();
  if (!cluster) return;
  for (const ns of [nsA, nsB])
    if (ns) await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  await cluster
    .kubectl(['delete', 'virtualnetwork,membershipreport,node', '-l', `castnet-test=${tag}`, '--wait=false'])
    .catch(() => undefined);
});

test('the older namespace keeps its address; the later group is refused, with an Event, and has no members', async () => {
  const a = await conditionOf(nsA, 'stream', 'Ready', 'Resolved');
  expect(members(a)).toEqual([`${nsA}/a1`]);
  const b = await conditionOf(nsB, 'grab', 'Accepted', 'AddressConflict');
  expect(members(b)).toEqual([]);
  const accepted = b.status!.conditions!.find((c) => c.type === 'Accepted')!;
  expect(accepted).toMatchObject({ status: 'False' });
  expect(accepted.message).toContain(
    `spec.address: 239.20.0.1 on network "${shared}" belongs to namespace "${nsA}"`,
  );
  expect(b.status!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
    status: 'False',
    reason: 'AddressConflict',
  });
  const events = await eventually('the AddressConflict Event', async () => {
    const e = await warnings(nsB, 'grab', 'AddressConflict');
    return e.length ? e : undefined;
  });
  expect(events[0]).toContain(`${nsA}/stream`);
});

test('a group in a namespace the network does not allow is refused, with an Event', async () => {
  const g = await conditionOf(nsB, 'sneak', 'Accepted', 'NamespaceNotAllowed');
  expect(members(g)).toEqual([]);
  expect(g.status!.conditions!.find((c) => c.type === 'Accepted')!.message).toContain(
    `VirtualNetwork "${closed}" does not allow namespace "${nsB}" (spec.allowedNamespaces)`,
  );
  await eventually('the NamespaceNotAllowed Event', async () => {
    const e = await warnings(nsB, 'sneak', 'NamespaceNotAllowed');
    return e.length ? e : undefined;
  });
});

test('a static member in another namespace is not a member', async () => {
  const g = await conditionOf(nsB, 'pull', 'MembersResolved', 'StaticMemberNotAllowed');
  expect(members(g)).toEqual([`${nsB}/b1`]);
});

test('when the owner’s group goes, the address passes to the next namespace', async () => {
  await cluster.kubectl(['-n', nsA, 'delete', 'multicastgroup', 'stream']);
  const b = await conditionOf(nsB, 'grab', 'Accepted', 'Accepted');
  // Its own pod only: 10.70.0.1 is tenant A's.
  expect(members(b)).toEqual([`${nsB}/b1`]);
});
