// The controller against a real kube-apiserver: three nodes' reports, static and nested members,
// selectors and a cycle resolved into status; `kubectl describe` shows them; deleted pods and lost
// nodes are collected; Events and metrics are emitted; two replicas do not fight.
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { Controller, type ControllerOptions } from '../../pkg/controller/controller.js';
import { CoordinationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type {
  MembershipReport,
  MulticastGroup,
  ReportEndpoint,
  ReportMembership,
} from '../../pkg/k8s/types.js';
import { clusterKubeConfig, createNamespace, ensureCluster, type Cluster } from '../harness/k8s.js';
import { crd } from '../../pkg/k8s/resources.js';
import { eventually, installCrds } from './fixtures.js';
import { sleep, waitFor } from '../../pkg/base/async.js';

const tag = randomBytes(3).toString('hex');
const network = `ctl-${tag}`;
const node = (i: number): string => `ctl-${tag}-n${i}`;
let cluster: Cluster;
let ns: string;
let api: CustomObjectsApi;
let leases: CoordinationV1Api;
const controllers: Controller[] = [];

const apply = (obj: object): Promise<string> =>
  cluster.kubectl(['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: stringify(obj) });

function startController(identity: string, extra: Partial<ControllerOptions> = {}): Promise<Controller> {
  const c = new Controller(clusterKubeConfig(cluster), {
    identity,
    leaseNamespace: ns,
    leaseName: 'castnet-controller',
    debounceMs: 20,
    // Generous against a loaded 2-core machine: a slow renewal must not look like a lost leader.
    leaseDurationMs: 8000,
    renewDeadlineMs: 6000,
    retryPeriodMs: 500,
    metrics: { host: '127.0.0.1', port: 0 },
    eventBurst: 50,
    watchVmis: false,
    ...extra,
  });
  controllers.push(c);
  return c.start().then(() => c);
}

async function stopController(c: Controller): Promise<void> {
  await c.dispose();
  controllers.splice(controllers.indexOf(c), 1);
}

const ep = (id: number, ip: string, pod: string): ReportEndpoint => ({
  endpointID: id,
  network,
  mac: `02:00:0a:00:00:${id.toString(16).padStart(2, '0')}`,
  ips: [ip],
  pod: { namespace: ns, name: pod },
});
const join = (endpointID: number, group: string): ReportMembership => ({ network, group, endpointID });

function report(i: number, endpoints: ReportEndpoint[], memberships: ReportMembership[]): MembershipReport {
  return {
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MembershipReport',
    metadata: { name: node(i), labels: { 'castnet-test': tag } },
    spec: {
      node: node(i),
      underlay: { address: `192.0.2.${i}`, port: 4790 },
      poolIndex: i,
      endpoints,
      memberships,
    },
  };
}

const group = (name: string, spec: Partial<MulticastGroup['spec']>): MulticastGroup => ({
  apiVersion: 'castnet.io/v1alpha1',
  kind: 'MulticastGroup',
  metadata: { name, namespace: ns },
  spec: { network, address: '239.10.0.1', ...spec },
});

const getGroup = (name: string): Promise<MulticastGroup> =>
  api.getNamespacedCustomObject({ ...crd('multicastGroup'), namespace: ns, name });

/** Waits until the group's status lists exactly `want` as node/endpointID:via. */
function membersOf(name: string, want: string[]): Promise<MulticastGroup> {
  return eventually(`members of ${name} to be ${want.join(', ')}`, async () => {
    const g = await getGroup(name);
    const got = (g.status?.members ?? []).map((m) => `${m.node}/${m.endpointID}:${m.via}`);
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`got ${got.join(', ')}`);
    return g;
  });
}

beforeAll(async () => {
  cluster = await ensureCluster();
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'cnctl');
  api = clusterKubeConfig(cluster).makeApiClient(CustomObjectsApi);
  leases = clusterKubeConfig(cluster).makeApiClient(CoordinationV1Api);
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VirtualNetwork',
    metadata: { name: network, labels: { 'castnet-test': tag } },
    spec: { networkID: 100000 + parseInt(tag.slice(0, 4), 16), subnets: ['10.60.0.0/16'] },
  });
  for (const i of [1, 2, 3]) {
    await apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: node(i), labels: { 'castnet-test': tag } },
    });
  }
  const pods = ['a1', 'a2', 'b1', 'b2', 'c1'];
  for (const [i, p] of pods.entries()) {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p, namespace: ns, labels: { app: p.startsWith('b') ? 'feed' : 'other' } },
      spec: {
        nodeName: node(Math.floor(i / 2) + 1),
        containers: [{ name: 'c', image: 'example.invalid/none' }],
      },
    });
  }
  await apply(report(1, [ep(1, '10.60.1.1', 'a1'), ep(2, '10.60.1.2', 'a2')], [join(1, '239.10.0.1')]));
  await apply(report(2, [ep(1, '10.60.2.1', 'b1'), ep(2, '10.60.2.2', 'b2')], [join(2, '239.10.0.2')]));
  await apply(report(3, [ep(1, '10.60.3.1', 'c1')], [join(1, '239.10.0.1')]));
  await apply(group('feed', { staticMembers: ['10.60.1.2'], nestedGroups: ['inner'] }));
  await apply(group('inner', { address: '239.10.0.2' }));
  await apply(
    group('by-label', { address: '239.10.0.3', selectors: { pods: { matchLabels: { app: 'feed' } } } }),
  );
  await apply(group('cyc-a', { address: '239.10.0.4', nestedGroups: ['cyc-b'] }));
  await apply(group('cyc-b', { address: '239.10.0.5', nestedGroups: ['cyc-a'] }));
}, 240_000);

afterAll(async () => {
  for (const c of [...controllers]) await c.dispose();
  if (!cluster) return;
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  await cluster
    .kubectl(['delete', 'virtualnetwork,membershipreport,node', '-l', `castnet-test=${tag}`, '--wait=false'])
    .catch(() => undefined);
});

test('merges three nodes’ reports with static and nested members into status', async () => {
  await startController('replica-1');
  const g = await membersOf('feed', [
    `${node(1)}/1:igmp`,
    `${node(1)}/2:static`,
    `${node(2)}/2:nested`,
    `${node(3)}/1:igmp`,
  ]);
  expect(g.status!.counts).toMatchObject({
    members: 4,
    nodes: 3,
    igmp: 2,
    static: 1,
    nested: 1,
    unresolved: 0,
  });
  expect(g.status!.members!.find((m) => m.via === 'nested')).toMatchObject({
    endpoint: '10.60.2.2',
    pod: `${ns}/b2`,
    group: `${ns}/inner`,
  });
  expect(g.status!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
    status: 'True',
    message: '4 members on 3 nodes',
  });
  await membersOf('by-label', [`${node(2)}/1:selector`, `${node(2)}/2:selector`]);
});

test('a nesting cycle is a condition with its path, visible in kubectl get', async () => {
  const a = await eventually('cyc-a NestingValid=False', async () => {
    const g = await getGroup('cyc-a');
    return g.status?.conditions?.find((c) => c.type === 'NestingValid' && c.status === 'False')
      ? g
      : undefined;
  });
  expect(a.status!.conditions!.find((c) => c.type === 'NestingValid')!.message).toContain(
    `${ns}/cyc-a -> ${ns}/cyc-b -> ${ns}/cyc-a`,
  );
  const table = await cluster.kubectl(['-n', ns, 'get', 'mcg', 'cyc-a', '-o', 'wide']);
  expect(table).toMatch(/cyc-a\s+ctl-\w+\s+239\.10\.0\.4\s+0\s+0\s+False\s+NestingCycle/);
});

test('kubectl describe multicastgroup shows members, counts, conditions and events', async () => {
  const out = await eventually('MembersJoined event in describe', async () => {
    const text = await cluster.kubectl(['-n', ns, 'describe', 'multicastgroup', 'feed']);
    return text.includes('MembersJoined') ? text : undefined;
  });
  for (const s of [
    '10.60.1.1',
    `${ns}/a1`,
    node(1),
    'igmp',
    'static',
    'nested',
    `${ns}/inner`,
    '4 members on 3 nodes',
  ]) {
    expect(out).toContain(s);
  }
  expect(out).toMatch(/Members:\s+4/);
});

test('a deleted pod’s membership is dropped, and a join change shows up', async () => {
  await cluster.kubectl(['-n', ns, 'delete', 'pod', 'c1', '--grace-period=0', '--force']);
  await membersOf('feed', [`${node(1)}/1:igmp`, `${node(1)}/2:static`, `${node(2)}/2:nested`]);
  await apply(
    report(
      2,
      [ep(1, '10.60.2.1', 'b1'), ep(2, '10.60.2.2', 'b2')],
      [join(2, '239.10.0.2'), join(1, '239.10.0.1')],
    ),
  );
  await membersOf('feed', [
    `${node(1)}/1:igmp`,
    `${node(1)}/2:static`,
    `${node(2)}/1:igmp`,
    `${node(2)}/2:nested`,
  ]);
});

test('a report change rewrites only the statuses it changes', async () => {
  const c = controllers[0];
  const writes = async (): Promise<number> =>
    Number(
      /castnet_controller_status_writes_total\{kind="MulticastGroup",result="ok"\} (\d+)/.exec(
        await fetchMetrics(c),
      )?.[1] ?? 0,
    );
  // The earlier tests' changes may still be arriving (informer events after settled() returned): count
  // from when the writes have stopped for a while, so that only this test's reports are counted.
  let before = -1;
  for (let now = await writes(); now !== before; now = await writes()) {
    before = now;
    await sleep(1_500);
    await c.settled();
  }
  // The same report again (a new resourceVersion, no new content), then one more join: the join is
  // the positive control. The controller sees the report's versions in order, so once the join is
  // in by-label's status, the no-op version was handled too, and only by-label's status was written.
  await apply({
    ...report(1, [ep(1, '10.60.1.1', 'a1'), ep(2, '10.60.1.2', 'a2')], [join(1, '239.10.0.1')]),
    metadata: { name: node(1), labels: { 'castnet-test': tag, touched: '1' } },
  });
  await apply(
    report(
      1,
      [ep(1, '10.60.1.1', 'a1'), ep(2, '10.60.1.2', 'a2')],
      [join(1, '239.10.0.1'), join(2, '239.10.0.3')],
    ),
  );
  await membersOf('by-label', [`${node(1)}/2:igmp`, `${node(2)}/1:selector`, `${node(2)}/2:selector`]);
  await c.settled();
  expect(await writes()).toBe(before + 1);
});

test('the report of a node deleted longer than the grace period is collected', async () => {
  const c = controllers[0];
  await stopController(c);
  const short = await startController('replica-gc', { nodeGraceMs: 1000, resyncMs: 500 });
  await cluster.kubectl(['delete', 'node', node(3)]);
  await eventually('report of the deleted node to be gone', async () => {
    const out = await cluster.kubectl(['get', 'membershipreport', '--ignore-not-found', node(3)]);
    return out.trim() === '' ? true : undefined;
  });
  const metrics = await fetchMetrics(short);
  expect(metrics).toMatch(/castnet_controller_reports_collected_total 1/);
  expect(metrics).toMatch(
    new RegExp(
      `castnet_group_members\\{namespace="${ns}",group="feed",network="${network}",address="239.10.0.1"\\} 4`,
    ),
  );
  expect(metrics).toMatch(/castnet_controller_is_leader 1/);
});

test('two replicas: one leads, the other stays passive, and takes over when the leader stops', async () => {
  const first = controllers[0];
  const second = await startController('replica-2');
  await eventually('one leader', async () => (first.isLeader && !second.isLeader ? true : undefined));
  await apply(group('late', { address: '239.10.0.9', staticMembers: ['10.60.1.1'] }));
  await membersOf('late', [`${node(1)}/1:static`]);
  // Stay side by side while the leader renews its Lease five times (each renewal is a retry period
  // in which the standby tried too): leadership must not flap.
  const holders = new Set<string>();
  const renewals = new Set<string>();
  let flapped = false;
  await waitFor(
    async () => {
      const { spec } = await leases.readNamespacedLease({ namespace: ns, name: 'castnet-controller' });
      holders.add(spec?.holderIdentity ?? '');
      if (spec?.renewTime) renewals.add(String(spec.renewTime));
      if (!first.isLeader || second.isLeader) flapped = true;
      return renewals.size >= 5 || flapped;
    },
    { what: 'five renewals of the Lease', intervalMs: 100 },
  );
  // One holder throughout (the first replica, whichever identity the earlier tests left leading).
  expect({ holders: holders.size, flapped }).toEqual({ holders: 1, flapped: false });
  expect(await fetchMetrics(second)).toMatch(/castnet_controller_is_leader 0/);
  expect(await fetchMetrics(second)).not.toMatch(
    /castnet_controller_status_writes_total\{kind="MulticastGroup",result="ok"\} [1-9]/,
  );

  await stopController(first);
  await eventually('the standby to lead', async () => (second.isLeader ? true : undefined));
  await apply(group('later', { address: '239.10.0.10', staticMembers: ['10.60.2.1'] }));
  await membersOf('later', [`${node(2)}/1:static`]);
  const lease = JSON.parse(
    await cluster.kubectl(['-n', ns, 'get', 'lease', 'castnet-controller', '-o', 'json']),
  );
  expect(lease.spec.holderIdentity).toBe('replica-2');
  expect(lease.spec.leaseTransitions).toBeGreaterThanOrEqual(1);
});

async function fetchMetrics(c: Controller): Promise<string> {
  const a = c.metricsAddress!;
  const res = await fetch(`http://127.0.0.1:${a.port}/metrics`);
  return res.text();
}
