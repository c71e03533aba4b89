// castnet on the real multi-node cluster (scripts/cluster), the user's path end to end:
//   pod start   pod create → Ready for pods with a castnet attachment (Multus → castnet-cni → agent)
//               against the same pods without one, alternating in the same run;
//   join        an application's IGMP join → its first delivered message, while a sender streams;
//   upgrade     `helm upgrade` to a new image tag under a 1,000 msg/s stream: loss and duplicates.
// Writes bench/results/cluster.json. Needs `make cluster-up` (the make target runs it).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  apply,
  castnetTestbed,
  helmInstallCastnet,
  imageRef,
  tagCastnetImage,
  type RealCluster,
  waitFor,
  waitPods,
  workloadDeployment,
} from '../test/harness/cluster.js';
import { joinToFirstDelivery, startSender, startStream } from '../test/harness/cluster-stream.js';
import { repoRoot } from '../test/harness/cni.js';
import { sleep } from '../pkg/base/async.js';

const PODS = Number(process.env.CASTNET_BENCH_PODS ?? 30);
const JOINS = Number(process.env.CASTNET_BENCH_JOINS ?? 30);
const RATE = 1000;

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
};
const round = (x: number): number => Math.round(x * 10) / 10;

/** Creates one bare pod, waits for Ready (polling every 50 ms), deletes it; the create→Ready ms. */
async function podReadyMs(
  c: RealCluster,
  ns: string,
  name: string,
  image: string,
  networks: string[],
  node: string,
): Promise<number> {
  const d = workloadDeployment({ namespace: ns, name, node, image, networks }) as {
    spec: { template: { metadata: object; spec: object } };
  };
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...d.spec.template.metadata, name, namespace: ns },
    spec: d.spec.template.spec,
  };
  const start = performance.now();
  await c.kubectl(['create', '-f', '-'], { input: JSON.stringify(pod) });
  const ms = await waitFor(
    async () => {
      const phase = await c.kubectl([
        '-n',
        ns,
        'get',
        'pod',
        name,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      return phase === 'True' ? performance.now() - start : undefined;
    },
    { what: `pod ${name} Ready`, timeoutMs: 180_000, intervalMs: 50 },
  );
  await c.kubectl(['-n', ns, 'delete', 'pod', name, '--wait=false', '--grace-period=1']);
  return ms;
}

async function main(): Promise<void> {
  const bed = await castnetTestbed('bench');
  const { c, ns } = bed;
  const image = await imageRef('workload');
  const network = bed.network({ suffix: 'net', networkID: 4001, subnet: '10.140.0.0/16' });
  const net = network.name;
  try {
    await apply(c, [
      ...network.objects,
      {
        apiVersion: 'castnet.io/v1alpha1',
        kind: 'MulticastGroup',
        metadata: { name: 'bench', namespace: ns },
        spec: { network: net, address: '239.40.0.1' },
      },
      workloadDeployment({ namespace: ns, name: 'sender', node: c.nodes[0]!, image, networks: [net] }),
      ...c.nodes.map((node, i) =>
        workloadDeployment({ namespace: ns, name: `rx${i + 1}`, node, image, networks: [net] }),
      ),
    ]);

    // Pod start, castnet and without alternating, spread over the nodes.
    const ready = { castnet: [] as number[], without: [] as number[] };
    for (let i = 0; i < PODS; i++) {
      const node = c.nodes[i % c.nodes.length]!;
      ready.without.push(await podReadyMs(c, ns, `plain-${i}`, image, [], node));
      ready.castnet.push(await podReadyMs(c, ns, `attached-${i}`, image, [net], node));
    }
    console.log(
      `pod ready p50: castnet ${percentile(ready.castnet, 0.5)} ms, without ${percentile(ready.without, 0.5)} ms`,
    );

    // Join → first delivery, rotating over receivers on every node (local and remote to the sender).
    const [sender] = await waitPods(c, ns, 'app=sender', 1);
    const rx = await Promise.all(
      c.nodes.map((_, i) => waitPods(c, ns, `app=rx${i + 1}`, 1).then((p) => p[0]!)),
    );
    const joins: number[] = [];
    const s = await startSender(c, ns, { sender: sender!, group: '239.40.0.1', port: 7001, rate: RATE });
    try {
      for (let i = 0; i < JOINS; i++) {
        joins.push(
          await joinToFirstDelivery(c, ns, { pod: rx[i % rx.length]!, group: '239.40.0.1', port: 7001 }),
        );
        // Past the querier's leave handling, so the next join is a fresh one.
        await sleep(1500);
      }
    } finally {
      await s.stop();
    }
    console.log(`join → first delivery p50 ${percentile(joins, 0.5)} ms, p99 ${percentile(joins, 0.99)} ms`);

    // helm upgrade to a new tag of the image under the stream.
    const { tag } = await tagCastnetImage(c, `bench-${Date.now()}`);
    const stream = await startStream(c, ns, {
      sender: sender!,
      receivers: rx,
      group: '239.40.0.2',
      port: 7002,
      rate: RATE,
    });
    await stream.flowing;
    await sleep(2000);
    await helmInstallCastnet(c, { tag });
    await sleep(3000);
    const up = await stream.stop();
    // Back to the recorded tag, so the next run upgrades again.
    await helmInstallCastnet(c);

    const result = {
      nodes: c.nodes.length,
      pods: PODS,
      pod_ready_p50_ms: {
        castnet: round(percentile(ready.castnet, 0.5)),
        without: round(percentile(ready.without, 0.5)),
      },
      pod_ready_ratio: round((percentile(ready.castnet, 0.5) / percentile(ready.without, 0.5)) * 100) / 100,
      join_to_delivery_ms: {
        samples: joins.length,
        p50: round(percentile(joins, 0.5)),
        p99: round(percentile(joins, 0.99)),
      },
      upgrade: {
        rate_per_s: RATE,
        sent: up.sent,
        // The longest run of lost messages at any receiver, in ms of the stream: one node's handover.
        max_loss_ms: Math.max(
          0,
          ...Object.values(up.receivers).flatMap((r) =>
            r.gaps.map(([from, to]) => ((to - from + 1) / RATE) * 1000),
          ),
        ),
        total_lost_ms_per_receiver: Object.fromEntries(
          Object.entries(up.receivers).map(([k, r]) => [k, Math.round((r.lost / RATE) * 1000)]),
        ),
        duplicates: Object.values(up.receivers).reduce((n, r) => n + r.duplicates, 0),
        per_receiver: Object.fromEntries(
          Object.entries(up.receivers).map(([k, r]) => [
            k,
            { lost: r.lost, duplicates: r.duplicates, longest_gap_ms: r.maxLossMs },
          ]),
        ),
      },
      goals: {
        pod_ready_ratio_max: 1.1,
        join_to_delivery_p99_ms_max: 500,
        upgrade_max_loss_ms: 1000,
        upgrade_duplicates: 0,
      },
      date: new Date().toISOString(),
    };
    const file = path.join(repoRoot, 'bench/results/cluster.json');
    await writeFile(file, JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await bed.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
