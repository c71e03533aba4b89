// The agent's Kubernetes lookup adapter on the shared test apiserver: it writes only its own node's
// MembershipReport, another node's adapter sees its endpoints and memberships through the watch, and
// VirtualNetworks and MulticastGroups become the directory's networks and groups.
import { jest } from '@jest/globals';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import {
  createNamespace,
  ensureCluster,
  serviceAccountKubeconfig,
  upstreamBin,
  type Cluster,
} from '../harness/k8s.js';
import { installCrds, nodeRegistration } from './fixtures.js';
import { adapter, endpoint, membersOf, membership, until } from './adapter-helpers.js';
import type { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import type { UnderlayHealthReport } from '../../pkg/lookup/port.js';
import { waitFor } from '../../pkg/base/async.js';
import { castnetBin } from '../harness/agent.js';
import { LIMITS } from '../../pkg/lookup/limits.js';

jest.setTimeout(120_000);

const tag = `cnad${process.pid}`;
const nodeA = `${tag}-a`;
const nodeB = `${tag}-b`;
const bystander = `${tag}-other`;
let cluster: Cluster;
const open: KubernetesLookup[] = [];
const track = (l: KubernetesLookup): KubernetesLookup => (open.push(l), l);

beforeAll(async () => {
  cluster = await ensureCluster();
  await installCrds(cluster);
  // Node objects for this file's nodes: a controller that another test runs on the shared cluster
  // with a short grace period deletes the reports of nodes that have none.
  for (const name of [nodeA, nodeB, bystander])
    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name } }),
    });
  await cluster.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'MembershipReport',
      metadata: { name: bystander },
      spec: { node: bystander, underlay: { address: '192.0.2.99', port: 4790 } },
    }),
  });
});

// Two live adapters of one node would (rightly) keep re-asserting their own state over each other.
afterEach(async () => {
  for (const l of open.splice(0)) await l.dispose();
});

afterAll(async () => {
  await cluster
    ?.kubectl(['delete', 'membershipreport', nodeA, nodeB, bystander, '--ignore-not-found'])
    .catch(() => undefined);
  await cluster
    ?.kubectl(['delete', 'node', nodeA, nodeB, bystander, '--ignore-not-found'])
    .catch(() => undefined);
});

const reportJson = async (name: string) =>
  JSON.parse(
    await cluster.kubectl(['get', 'membershipreport', name, '-o', 'json', '--show-managed-fields']),
  ) as {
    metadata: { resourceVersion: string; managedFields: { manager: string }[] };
    spec: { underlay: { address: string }; endpoints?: unknown[]; memberships?: { group: string }[] };
  };

test('an adapter writes its own report, and only its own', async () => {
  const before = (await reportJson(bystander)).metadata.resourceVersion;
  const a = track(adapter(cluster));
  await a.registerNode(nodeRegistration(nodeA, 1));
  await a.publishEndpoints(nodeA, [endpoint(nodeA, 1, '10.1.0.1'), endpoint(nodeA, 2, '10.1.0.2')]);
  await a.reportMemberships(nodeA, [membership(nodeA, 1, '239.1.1.1')]);

  const mine = await reportJson(nodeA);
  expect(mine.spec.underlay.address).toBe('192.0.2.1');
  expect(mine.spec.endpoints).toHaveLength(2);
  expect(mine.spec.memberships?.map((m) => m.group)).toEqual(['239.1.1.1']);
  // The spec and the status (its Truncated condition) are both the agent's alone.
  expect([...new Set(mine.metadata.managedFields.map((f) => f.manager))]).toEqual(['castnet-agent']);
  // Another node's report is untouched, and the adapter refuses to write one.
  expect((await reportJson(bystander)).metadata.resourceVersion).toBe(before);
  await expect(a.reportMemberships(bystander, [])).rejects.toThrow(/not this agent's node/);
  await expect(a.publishEndpoints(nodeA, [endpoint(bystander, 3, '10.1.0.3')])).rejects.toThrow(
    /record of node ".*-other" in the report of node ".*-a"/,
  );
});

test("a second node's adapter sees the first's endpoints, joins and leaves", async () => {
  const a = track(adapter(cluster));
  const b = track(adapter(cluster));
  await a.registerNode(nodeRegistration(nodeA, 1));
  await b.registerNode(nodeRegistration(nodeB, 2));
  await a.publishEndpoints(nodeA, [endpoint(nodeA, 1, '10.1.0.1')]);

  const seen = await until(b, (d) => d.endpoints.some((e) => e.node === nodeA && e.ips[0] === '10.1.0.1'));
  expect(seen.nodes.find((n) => n.name === nodeA)).toEqual(nodeRegistration(nodeA, 1));
  expect(seen.nodes.find((n) => n.name === bystander)?.address).toBe('192.0.2.99');

  await a.reportMemberships(nodeA, [membership(nodeA, 1, '239.7.7.7')]);
  // How fast the join propagates is the controller benchmark's business, not this test's.
  await until(b, (d) => membersOf(d, '239.7.7.7').includes(`${nodeA}/1`));

  await a.reportMemberships(nodeA, []);
  const left = await until(b, (d) => membersOf(d, '239.7.7.7').length === 0);
  // The endpoints stayed: a membership report replaces the memberships only.
  expect(left.endpoints.filter((e) => e.node === nodeA)).toHaveLength(1);
});

test("a node's wire format version 2 key, and its rotation, reach the other nodes through its report", async () => {
  const a = track(adapter(cluster));
  const b = track(adapter(cluster));
  const key = (epoch: number) => ({
    epoch,
    publicKey: Buffer.alloc(32, epoch).toString('base64'),
  });
  const record = (epoch: number) => ({ ...nodeRegistration(nodeA, 1), wireVersion: 2, wireKey: key(epoch) });
  await a.registerNode(record(1));
  await b.registerNode(nodeRegistration(nodeB, 2));
  await a.publishEndpoints(nodeA, []);
  const seen = await until(b, (d) => d.nodes.some((n) => n.name === nodeA && n.wireKey?.epoch === 1));
  expect(seen.nodes.find((n) => n.name === nodeA)).toEqual(record(1));
  expect((await reportJson(nodeA)).spec.underlay).toMatchObject({ wireVersion: 2, keyEpoch: 1 });
  // A rotation is a new registration: the report follows, and so does every other node.
  await a.registerNode(record(2));
  await until(b, (d) => d.nodes.some((n) => n.name === nodeA && n.wireKey?.epoch === 2));
});

test('a burst of changes is coalesced into few writes and the last state wins', async () => {
  const a = track(adapter(cluster));
  await a.registerNode(nodeRegistration(nodeA, 1));
  await a.publishEndpoints(nodeA, [endpoint(nodeA, 1, '10.1.0.1')]);
  const start = a.stats.writes;
  const burst = [];
  for (let i = 1; i <= 50; i++)
    burst.push(a.reportMemberships(nodeA, [membership(nodeA, 1, `239.8.0.${i}`)]));
  await Promise.all(burst);
  expect(a.stats.writes - start).toBeLessThanOrEqual(3);
  expect((await reportJson(nodeA)).spec.memberships?.map((m) => m.group)).toEqual(['239.8.0.50']);
});

test("the node's underlay health lands in its report's status, beside the Truncated condition", async () => {
  const a = track(adapter(cluster));
  await a.registerNode(nodeRegistration(nodeA, 1));
  await a.publishEndpoints(nodeA, [endpoint(nodeA, 1, '10.1.0.1')]);
  const health = (status: 'up' | 'down' | 'no-peers'): UnderlayHealthReport => ({
    node: nodeA,
    probeBytes: 1472,
    condition:
      status === 'no-peers'
        ? { status: 'Unknown', reason: 'NoPeers', message: 'no other node' }
        : status === 'down'
          ? { status: 'False', reason: 'PeerUnreachable', message: `unreachable: ${nodeB}` }
          : {
              status: 'True',
              reason: 'AllPeersReachable',
              message: '1 peers reachable with 1472-byte datagrams',
            },
    peers:
      status === 'no-peers' ? [] : [{ node: nodeB, status, rttMs: 0.25, since: '2026-01-01T00:00:00.000Z' }],
  });
  type Status = {
    conditions?: { type: string; status: string; reason: string; message: string }[];
    underlay?: { probeBytes: number; peers: unknown[] };
  };
  const statusWith = (reason: string) =>
    waitFor(
      async () => {
        const r = JSON.parse(
          await cluster.kubectl(['get', 'membershipreport', nodeA, '-o', 'json', '--show-managed-fields']),
        ) as { status?: Status; metadata: { managedFields: { manager: string }[] } };
        const c = r.status?.conditions?.find((c) => c.type === 'UnderlayHealthy');
        return c?.reason === reason && r.status?.conditions?.some((c) => c.type === 'Truncated') && r;
      },
      { what: `condition UnderlayHealthy ${reason} beside Truncated in ${nodeA}'s report` },
    );
  // An agent's first verdict often lists no peers: it must land too (the apiserver once refused it).
  await a.reportUnderlayHealth(health('no-peers'));
  expect((await statusWith('NoPeers')).status?.underlay).toEqual({ probeBytes: 1472 });
  await a.reportUnderlayHealth(health('down'));
  const down = await statusWith('PeerUnreachable');
  expect(down.status?.underlay).toEqual({ probeBytes: 1472, peers: health('down').peers });
  expect(down.status?.conditions?.find((c) => c.type === 'UnderlayHealthy')?.message).toBe(
    `unreachable: ${nodeB}`,
  );
  // Its own field manager: neither status writer removes the other's condition.
  expect(new Set(down.metadata.managedFields.map((f) => f.manager))).toContain('castnet-agent-health');
  // `castnet health --cluster` reads it back through client-node, as an operator's kubeconfig would.
  const { stdout } = await run(castnetBin, [
    'health',
    '--cluster',
    '--kubeconfig',
    cluster.kubeconfigPath,
    '--json',
  ]);
  expect((JSON.parse(stdout) as UnderlayHealthReport[]).find((r) => r.node === nodeA)).toEqual(
    health('down'),
  );
  await a.reportUnderlayHealth(health('up'));
  const up = await statusWith('AllPeersReachable');
  expect(up.status?.underlay?.peers).toEqual(health('up').peers);
});

test('VirtualNetworks and MulticastGroups of the selected label become networks and groups', async () => {
  const ns = await createNamespace(cluster, tag);
  const label = `castnet.io/test=${tag}`;
  const id = 100_000 + (process.pid % 100_000);
  const vnet = (name: string, labelled: boolean, networkID: number) => ({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VirtualNetwork',
    metadata: { name, ...(labelled ? { labels: { 'castnet.io/test': tag } } : {}) },
    spec: { networkID, subnets: ['10.77.0.0/16'], mtu: 1300 },
  });
  const objects = [
    vnet(`${tag}-blue`, true, id),
    vnet(`${tag}-unlabelled`, false, id + 1),
    {
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'MulticastGroup',
      metadata: { name: 'ops', namespace: ns, labels: { 'castnet.io/test': tag } },
      spec: { network: `${tag}-blue`, address: '239.9.9.9', staticMembers: ['10.77.0.5', '239.1.1.1'] },
    },
  ];
  try {
    await cluster.kubectl(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
    const l = track(adapter(cluster, label));
    const d = await until(l, (x) => x.networks.length > 0 && x.groups.length > 0);
    expect(d.networks).toEqual([
      {
        name: `${tag}-blue`,
        id,
        subnets: ['10.77.0.0/16'],
        mtu: 1300,
        multicast: true,
        broadcast: true,
        // The CRD's defaults for the querier reach the agents with the network.
        querier: { queryIntervalSeconds: 125, robustness: 2, maxGroupsPerEndpoint: 256 },
        // And so do its per-endpoint rate limits (pkg/lookup/limits.ts holds the same numbers).
        rateLimits: {
          broadcast: { packetsPerSecond: LIMITS.broadcastPpsDefault, burst: LIMITS.broadcastBurstDefault },
          arp: { packetsPerSecond: LIMITS.arpPpsDefault, burst: LIMITS.arpBurstDefault },
          multicast: { packetsPerSecond: LIMITS.multicastPpsDefault, burst: LIMITS.multicastBurstDefault },
        },
      },
    ]);
    expect(d.groups).toEqual([
      {
        namespace: ns,
        name: 'ops',
        network: `${tag}-blue`,
        address: '239.9.9.9',
        staticMembers: ['10.77.0.5', '239.1.1.1'],
        nestedGroups: [],
        allowedSources: [],
      },
    ]);
    // A change to a group reaches the directory through the watch.
    await cluster.kubectl([
      '-n',
      ns,
      'patch',
      'mcg',
      'ops',
      '--type=merge',
      '-p',
      '{"spec":{"staticMembers":["10.77.0.6"]}}',
    ]);
    await until(l, (x) => x.groups[0]?.staticMembers[0] === '10.77.0.6');
  } finally {
    await cluster
      .kubectl(['delete', 'vnet', `${tag}-blue`, `${tag}-unlabelled`, '--ignore-not-found'])
      .catch(() => undefined);
    await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  }
});

test("under the chart's agent role the adapter reads the directory, writes its report and reads pods", async () => {
  const ns = await createNamespace(cluster, `${tag}-rbac`);
  const release = `${tag}r`;
  const { stdout: rbac } = await run(path.join(upstreamBin, 'helm'), [
    'template',
    release,
    path.resolve(import.meta.dirname, '../../charts/castnet'),
    '--namespace',
    ns,
    '--kube-version',
    '1.34.0',
    '--show-only',
    'templates/rbac-agent.yaml',
  ]);
  try {
    await cluster.kubectl(['apply', '-f', '-'], { input: rbac });
    const kubeconfig = await serviceAccountKubeconfig(cluster, ns, `${release}-agent`);
    const a = track(adapter(cluster, undefined, kubeconfig));
    await a.registerNode(nodeRegistration(nodeA, 1));
    await a.reportMemberships(nodeA, [membership(nodeA, 1, '239.5.5.5')]);
    expect((await reportJson(nodeA)).spec.memberships?.map((m) => m.group)).toEqual(['239.5.5.5']);
    const d = await until(a, (x) => x.nodes.some((n) => n.name === bystander));
    expect(d.nodes.map((n) => n.name)).toContain(nodeA);
    expect(await a.podMetadata(ns, 'no-such-pod')).toBeUndefined();
  } finally {
    await cluster
      .kubectl(['delete', 'clusterrole,clusterrolebinding', `${release}-agent`, '--ignore-not-found'])
      .catch(() => undefined);
    await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  }
});
