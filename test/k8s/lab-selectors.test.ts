// A MulticastGroup that selects pods by label (the README's first example), end to end on a real
// apiserver: a two-node lab whose agents use the Kubernetes lookup adapter, with the real `castnet
// controller` beside them. Every receiver pod runs an application that has joined the group, but its
// IGMP reports are dropped inside the pod (nftables), so only the selector can make it a member: the
// selected pods' applications receive each message exactly once, on the sender's node and on the
// other one, the unselected pod's application receives nothing, and relabelling moves membership.
// A private cluster, so this controller resolves no other test's groups. Needs `make build`.
import { jest } from '@jest/globals';
import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { LAB_LABEL } from '../../pkg/lab/kubernetes.js';
import { runIn, spawnIn, stop } from '../../pkg/sys/exec.js';
import { ensureCluster, stopCluster, type Cluster } from '../harness/k8s.js';
import { useLab } from '../harness/lab-fixture.js';
import { eventually, installCrds } from './fixtures.js';
import { sleep } from '../../pkg/base/async.js';

jest.setTimeout(300_000);

const root = join(import.meta.dirname, '../..');
const GROUP = '239.9.9.9';
const PORT = 5000;
/** Receivers: l0 shares the sender's node, r1 and o1 are on the other one. */
const RECEIVERS = ['l0', 'r1', 'o1'] as const;
type Receiver = (typeof RECEIVERS)[number];

const LAB = `
nodes: 2
networks:
  - { name: blue, id: 310, subnets: [10.42.0.0/16] }
pods:
  - { name: s0, node: 0, network: blue }
  - { name: l0, node: 0, network: blue }
  - { name: r1, node: 1, network: blue }
  - { name: o1, node: 1, network: blue }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`;

// The pod's kernel must not announce its join: IGMP leaving the pod is dropped.
const QUIET_IGMP = `
table ip castnet-test-quiet {
  chain out {
    type filter hook output priority 0;
    ip protocol igmp drop
  }
}
`;

let cluster: Cluster;
let controller: ChildProcess | undefined;
const apps = new Map<Receiver, { child: ChildProcess; received: string }>();

async function kubectl(...args: string[]): Promise<string> {
  return cluster.kubectl(args);
}

/** How many copies of `token` the pod's application has received. */
function appReceived(pod: Receiver, token: string): number {
  return apps
    .get(pod)!
    .received.split('\n')
    .filter((line) => line === token).length;
}

/**
 * Sends one message from s0 and, once every pod in `want` has it (or 3 s passed), a second one that
 * flushes the path: any late or duplicate copy of the first is in by the time the second arrives.
 * Returns the first message's token and how often each receiver's application got it.
 */
async function probe(want: Receiver[]): Promise<{ token: string; got: Record<Receiver, number> }> {
  const arrived = async (token: string): Promise<void> => {
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !want.every((p) => appReceived(p, token) > 0)) await sleep(50);
  };
  const token = await lab().sendTo('s0', GROUP, PORT);
  await arrived(token);
  await arrived(await lab().sendTo('s0', GROUP, PORT));
  const got = Object.fromEntries(RECEIVERS.map((p) => [p, appReceived(p, token)])) as Record<
    Receiver,
    number
  >;
  return { token, got };
}

const exactly = (want: Receiver[]): Record<Receiver, number> =>
  Object.fromEntries(RECEIVERS.map((p) => [p, want.includes(p) ? 1 : 0])) as Record<Receiver, number>;

/** Polls until a message reaches exactly the pods in `want`, once each, then checks one more. */
async function deliveredExactlyTo(want: Receiver[]): Promise<void> {
  await eventually(
    `a message from s0 to reach exactly ${want.join(', ')}`,
    async () => {
      const { got } = await probe(want);
      return JSON.stringify(got) === JSON.stringify(exactly(want)) ? true : undefined;
    },
    60_000,
  );
  const { token, got } = await probe(want);
  expect(got).toEqual(exactly(want));
  // The frame reached the unselected pods' links not at all (not only their applications).
  for (const p of RECEIVERS) expect(lab().receivedBy(p, token)).toBe(want.includes(p) ? 1 : 0);
}

/** The group's status members as "pod:via", sorted. */
async function statusMembers(ns: string): Promise<string[]> {
  const g = JSON.parse(await kubectl('get', 'mcg', '-n', ns, 'by-label', '-o', 'json')) as {
    status?: { members?: { pod?: string; via: string }[] };
  };
  return (g.status?.members ?? []).map((m) => `${m.pod}:${m.via}`).sort();
}

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnsel${process.pid}` });
  await installCrds(cluster);
  await kubectl('create', 'namespace', 'castnet-system');
  controller = spawn(
    join(root, 'bin/castnet'),
    ['controller', '--kubeconfig', cluster.kubeconfigPath, '--metrics-addr', '127.0.0.1:0'],
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
}, 180_000);

// After the cluster's beforeAll (its kubeconfig), and disposed before the afterAll below stops it.
const { lab, pod, own } = useLab(LAB, { kubeconfig: () => cluster.kubeconfigPath, startTimeoutMs: 180_000 });

beforeAll(async () => {
  for (const name of RECEIVERS) {
    const { ns, ip } = pod(name);
    await runIn(ns, 'nft', ['-f', '-'], { input: QUIET_IGMP });
    const child = own(
      spawnIn(ns, 'socat', ['-u', `UDP4-RECV:${PORT},reuseaddr,ip-add-membership=${GROUP}:${ip}`, 'STDOUT']),
    );
    const app = { child, received: '' };
    child.stdout!.on('data', (c: Buffer) => (app.received += c.toString()));
    apps.set(name, app);
  }
});

afterAll(async () => {
  if (controller) await stop(controller);
  if (cluster) await stopCluster(cluster);
}, 120_000);

test('pods selected by label receive the group’s traffic, others nothing, and relabelling moves membership', async () => {
  const ns = lab().topology.id;
  const net = `${ns}-blue`;
  await kubectl('label', 'pod', '-n', ns, 'l0', 'r1', 'app=feed');
  // The README's first example: members by pod label.
  await cluster.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'MulticastGroup',
      metadata: { name: 'by-label', namespace: ns, labels: { [LAB_LABEL]: ns } },
      spec: { network: net, address: GROUP, selectors: { pods: { matchLabels: { app: 'feed' } } } },
    }),
  });

  await deliveredExactlyTo(['l0', 'r1']);
  // o1's application listened all along: its pod was never a member, so it got nothing at all.
  expect(apps.get('o1')!.received).toBe('');
  await eventually('the group’s status to list the selected pods', async () => {
    const m = await statusMembers(ns);
    return m.join() === [`${ns}/l0:selector`, `${ns}/r1:selector`].join() ? m : undefined;
  });

  // Relabel: r1 leaves the selection, o1 enters it.
  await kubectl('label', 'pod', '-n', ns, 'r1', 'app-');
  await kubectl('label', 'pod', '-n', ns, 'o1', 'app=feed');
  await deliveredExactlyTo(['l0', 'o1']);
  await eventually('the group’s status to follow the labels', async () => {
    const m = await statusMembers(ns);
    return m.join() === [`${ns}/l0:selector`, `${ns}/o1:selector`].join() ? m : undefined;
  });

  // The agents' reports say how the members joined.
  const reports = JSON.parse(await kubectl('get', 'mrep', '-o', 'json')) as {
    items: { spec: { memberships?: { group: string; via?: string }[] } }[];
  };
  const vias = reports.items.flatMap((r) => (r.spec.memberships ?? []).filter((m) => m.group === GROUP));
  expect(vias).toHaveLength(2);
  for (const m of vias) expect(m.via).toBe('selector');
});
