// A market-data-style stream (issue 13, scenario 5), its correctness part, on a real three-node lab:
// one sender streams sequence-numbered datagrams to one group, and 5 members on 3 nodes (one on the
// sender's node, two on each other node) each get every datagram, once, in order. The members hold
// the group with a real joining application (socat, as the lab's join step does) and read through
// their own UDP socket on the group's port. The rate is modest: loss and burstiness at 10,000 and
// 20,000 msg/s, beside the kernel bridge, are `make bench-marketdata`'s (bench/marketdata.ts).
import { sleep, waitFor } from '../../pkg/base/async.js';
import { readStream, stampStream, StreamTally } from '../../pkg/lab/stream.js';
import { run } from '../../pkg/sys/exec.js';
import { UnderlaySocket, type OutDatagram } from '../../pkg/underlay/udp.js';
import { useLab } from '../harness/lab-fixture.js';

const GROUP = '239.20.0.1';
const PORT = 5100;
const RATE = 2000;
const COUNT = 10_000;
const RUN = 1;
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

/** Sends COUNT stamped 100-byte datagrams at RATE, paced per millisecond. */
async function stream(sock: UnderlaySocket): Promise<void> {
  const to = sock.peer(GROUP, PORT);
  const start = process.hrtime.bigint();
  for (let seq = 0; seq < COUNT;) {
    const due = Math.min(COUNT, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * RATE));
    const batch: OutDatagram[] = [];
    for (; seq < due; seq++) {
      const data = Buffer.alloc(100);
      stampStream(data, RUN, seq, process.hrtime.bigint());
      batch.push({ to, data });
    }
    if (batch.length) expect(sock.send(batch)).toBe(batch.length);
    await sleep(1);
  }
}

it('delivers every datagram of a stream to each of 5 members on 3 nodes, once and in order', async () => {
  const netns = (p: string) => `/run/netns/${pod(p).ns}`;
  const tallies = new Map<string, StreamTally>();
  for (const m of MEMBERS) {
    await lab().joinGroup(m, GROUP, PORT);
    const tally = new StreamTally(COUNT);
    tallies.set(m, tally);
    const sock = own(
      UnderlaySocket.open({ address: GROUP, port: PORT, netns: netns(m), reuseAddress: true }),
    );
    sock.onDatagrams((batch) => {
      const now = Number(process.hrtime.bigint());
      for (const d of batch) {
        const h = readStream(d.data);
        if (h?.run === RUN) tally.record(h.seq, now);
      }
    });
  }
  // A Kubernetes pod's default route covers multicast; the lab's pods have only their subnet's.
  await run('ip', ['-n', pod('src').ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
  const sender = own(UnderlaySocket.open({ address: pod('src').ip, port: 0, netns: netns('src') }));
  await stream(sender);

  await waitFor(() => [...tallies.values()].every((t) => t.count >= COUNT), {
    what: `${COUNT} datagrams at every member`,
    observed: () => `received ${JSON.stringify([...tallies.values()].map((t) => t.count))}`,
  });
  for (const [member, tally] of tallies) {
    const s = tally.summary(COUNT);
    expect({ member, received: s.received, duplicates: s.duplicates, reordered: s.reordered }).toEqual({
      member,
      received: COUNT,
      duplicates: 0,
      reordered: 0,
    });
    expect(s.unexpected).toBe(0);
  }
}, 300_000);
