// A market-data-style stream (issue 13, scenario 5), its correctness part, on a real three-node lab:
// one sender streams sequence-numbered datagrams to one group, and 5 members on 3 nodes (one on the
// sender's node, two on each other node) each get every datagram, once, in order. The members hold
// the group with a real joining application (socat, as the lab's join step does) and read through
// their own UDP socket on the group's port. The rate is modest: loss and burstiness at 10,000 and
// 20,000 msg/s, beside the kernel bridge, are `make bench-marketdata`'s (bench/marketdata.ts). The
// sender and the members' tallies are ./stream.ts, shared with test/cluster/workloads.test.ts.
import { waitFor } from '../../pkg/base/async.js';
import { run } from '../../pkg/sys/exec.js';
import { UnderlaySocket } from '../../pkg/underlay/udp.js';
import { useLab } from '../harness/lab-fixture.js';
import { inNetns } from '../harness/where.js';
import { exactlyOnceInOrder, sendStream, StreamMembers, type StreamSpec } from './stream.js';

const SPEC: StreamSpec = { group: '239.20.0.1', port: 5100, rate: 2000, count: 10_000, run: 1 };
const MEMBERS = ['r0', 'r1a', 'r1b', 'r2a', 'r2b'];

const { lab, pod, own } = useLab(
  `
nodes: 3
networks:
  - { name: feed, id: 100, subnets: [10.30.0.0/16] }
pods:
  - { name: src, node: 0, network: feed }
  - { name: r0, node: 0, network: feed }
  - { name: r1a, node: 1, network: feed }
  - { name: r1b, node: 1, network: feed }
  - { name: r2a, node: 2, network: feed }
  - { name: r2b, node: 2, network: feed }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`,
  { captures: false },
);

it('delivers every datagram of a stream to each of 5 members on 3 nodes, once and in order', async () => {
  const members = own(new StreamMembers(SPEC));
  for (const m of MEMBERS) {
    await lab().joinGroup(m, SPEC.group, SPEC.port);
    members.read(m, inNetns(pod(m).ns));
  }
  // A Kubernetes pod's default route covers multicast; the lab's pods have only their subnet's.
  await run('ip', ['-n', pod('src').ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
  const sender = own(
    UnderlaySocket.open({ address: pod('src').ip, port: 0, netns: inNetns(pod('src').ns).netnsPath }),
  );
  await sendStream(sender, SPEC);

  await waitFor(() => members.complete, {
    what: `${SPEC.count} datagrams at every member`,
    observed: () => `received ${JSON.stringify(members.counts())}`,
  });
  exactlyOnceInOrder(members.summaries(), SPEC.count);
}, 300_000);
