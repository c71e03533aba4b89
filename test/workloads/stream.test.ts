// A market-data-style stream (issue 13, scenario 5), its correctness part, on a real three-node lab:
// one sender streams sequence-numbered datagrams to one group, and 5 members on 3 nodes (one on the
// sender's node, two on each other node) each get every datagram, once, in order. The members hold
// the group with a real joining application (socat, as the lab's join step does) and read through
// their own UDP socket on the group's port. The rate is modest: loss and burstiness at 10,000 and
// 20,000 msg/s, beside the kernel bridge, are `make bench-marketdata`'s (bench/marketdata.ts).
import { join } from 'node:path';
import { sleep } from '../../pkg/base/async.js';
import { Lab } from '../../pkg/lab/runner.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import { readStream, stampStream, StreamTally } from '../../pkg/lab/stream.js';
import { run } from '../../pkg/sys/exec.js';
import { UnderlaySocket, type OutDatagram } from '../../pkg/underlay/udp.js';
import { waitFor } from '../harness/wait.js';

const root = join(import.meta.dirname, '../..');
const GROUP = '239.20.0.1';
const PORT = 5100;
const RATE = 2000;
const COUNT = 10_000;
const RUN = 1;
const MEMBERS = ['r0', 'r1a', 'r1b', 'r2a', 'r2b'];

const labFile = parseLabFile(`
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
`);

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
  const lab = new Lab(labFile, {
    castnetBin: join(root, 'bin/castnet'),
    cniBin: join(root, 'bin/castnet-cni'),
    captures: false,
  });
  const sockets: UnderlaySocket[] = [];
  try {
    await lab.start();
    const netns = (pod: string) => `/run/netns/${lab.podInfo(pod).ns}`;
    const tallies = new Map<string, StreamTally>();
    for (const m of MEMBERS) {
      await lab.joinGroup(m, GROUP, PORT);
      const tally = new StreamTally(COUNT);
      tallies.set(m, tally);
      const sock = UnderlaySocket.open({ address: GROUP, port: PORT, netns: netns(m), reuseAddress: true });
      sockets.push(sock);
      sock.onDatagrams((batch) => {
        const now = Number(process.hrtime.bigint());
        for (const d of batch) {
          const h = readStream(d.data);
          if (h?.run === RUN) tally.record(h.seq, now);
        }
      });
    }
    // A Kubernetes pod's default route covers multicast; the lab's pods have only their subnet's.
    await run('ip', ['-n', lab.podInfo('src').ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
    const sender = UnderlaySocket.open({ address: lab.podInfo('src').ip, port: 0, netns: netns('src') });
    sockets.push(sender);
    await stream(sender);

    await waitFor(() => [...tallies.values()].every((t) => t.count >= COUNT), {
      what: `${COUNT} datagrams at every member (now ${JSON.stringify([...tallies.values()].map((t) => t.count))})`,
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
  } finally {
    for (const s of sockets) s.dispose();
    await lab.dispose();
  }
}, 300_000);
