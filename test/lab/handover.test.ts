// Agent handover: a second agent started on a node while the first runs (a rolling update with surge)
// takes the node over. A 1,000 msg/s multicast stream across nodes must lose well under a second
// and never be delivered twice; afterwards the first agent holds no socket of the data plane and the
// second one serves castnet-cni.
import { type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { sleep, waitFor } from '../../pkg/base/async.js';
import { spawnIn } from '../../pkg/sys/exec.js';
import { useLab } from '../harness/lab-fixture.js';

const GROUP = '239.9.9.9';
const PORT = 6000;
const RATE = 1000;
const MESSAGES = 9000;

const { lab, pod, own } = useLab(`
nodes: 2
networks:
  - { name: blue, id: 91, subnets: [10.91.0.0/16] }
pods:
  - { name: src, node: 0, network: blue }
  - { name: near, node: 0, network: blue }
  - { name: far, node: 1, network: blue }
# The stream is this test's own (below); the scenario only checks the lab is wired.
scenarios:
  - name: wired
    steps:
      - ping: { from: src, to: far }
`);

/** Joins GROUP and prints every datagram's text on its own line. */
const RECEIVER = `
const d = require('dgram').createSocket({ type: 'udp4', reuseAddr: true });
d.on('message', (m) => process.stdout.write(m.toString() + '\\n'));
d.bind(${PORT}, () => { d.addMembership('${GROUP}', process.argv[1]); process.stdout.write('joined\\n'); });
`;

/** Sends "seq" datagrams to GROUP at RATE per second, paced by the clock, then exits. */
const SENDER = `
const d = require('dgram').createSocket('udp4');
const [iface, count, rate] = process.argv.slice(1);
d.bind(0, iface, () => {
  d.setMulticastInterface(iface);
  d.setMulticastTTL(1);
  const start = Date.now();
  let seq = 0;
  const tick = () => {
    const due = Math.min(Number(count), Math.floor(((Date.now() - start) * Number(rate)) / 1000));
    while (seq < due) d.send(String(seq++), ${PORT}, '${GROUP}');
    if (seq < Number(count)) setTimeout(tick, 1);
    else setTimeout(() => d.close(), 200);
  };
  tick();
});
`;

class Receiver {
  readonly seqs: number[] = [];
  private text = '';
  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stderr!.on('data', (c: Buffer) => process.stderr.write(c));
    child.stdout!.on('data', (c: string) => {
      this.text += c;
      const lines = this.text.split('\n');
      this.text = lines.pop()!;
      for (const l of lines) if (/^\d+$/.test(l)) this.seqs.push(Number(l));
    });
  }
}

/** Duplicates, and the messages lost after the first one received (total and longest run). */
export function lossReport(
  seqs: number[],
  sent: number,
): { duplicates: number; lost: number; longestGap: number } {
  const seen = new Set<number>();
  let duplicates = 0;
  for (const s of seqs) {
    if (seen.has(s)) duplicates++;
    seen.add(s);
  }
  const first = Math.min(...seqs);
  let lost = 0;
  let run = 0;
  let longestGap = 0;
  for (let s = first; s < sent; s++) {
    if (seen.has(s)) run = 0;
    else {
      lost++;
      longestGap = Math.max(longestGap, ++run);
    }
  }
  return { duplicates, lost, longestGap };
}

/** Socket inodes in /proc/<pid>/net/<table> (the process's own network namespace) it holds open. */
function heldSockets(pid: number, table: 'udp' | 'packet'): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`, 'utf8') as string);
    if (m) inodes.add(m[1]!);
  }
  const rows = readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n');
  const col = rows[0]!.trim().split(/\s+/).indexOf('Inode');
  return rows.slice(1).filter((r) => inodes.has(r.trim().split(/\s+/)[col === -1 ? 9 : col]!)).length;
}

/** Joins GROUP in pod `p` and reports what it receives; stopped with the lab. */
const receiver = (p: string) =>
  new Receiver(own(spawnIn(pod(p).ns, process.execPath, ['-e', RECEIVER, pod(p).ip])));

/** How many pods the lookup service lists as members of GROUP. */
const members = () => lab().directory.memberships.filter((m) => m.group === GROUP).length;

it('hands a node over between two agents with no duplicate and well under a second of loss', async () => {
  const receivers = ['near', 'far'].map(receiver);
  // The kernel's IGMP reports reach the querier of each receiver's node.
  await waitFor(() => members() >= 2, { what: 'both receivers to be members' });
  const sender = own(
    spawnIn(pod('src').ns, process.execPath, ['-e', SENDER, pod('src').ip, String(MESSAGES), String(RATE)]),
  );
  await waitFor(() => receivers.every((r) => r.seqs.length >= 1000), {
    what: 'the stream to flow',
    observed: () => `received ${receivers.map((r) => r.seqs.length).join(', ')}`,
  });

  // The sender's node (capture, local delivery, sending), then the receiving node.
  const handovers = [];
  for (const node of [0, 1]) {
    const { previous, next } = await lab().handOverAgent(node);
    handovers.push({ node, previous, next });
    await sleep(1500);
  }
  await new Promise<void>((resolve) =>
    sender.exitCode !== null ? resolve() : sender.once('exit', () => resolve()),
  );
  await waitFor(() => receivers.every((r) => r.seqs.includes(MESSAGES - 1)), {
    what: 'the last message',
    timeoutMs: 5000,
  });

  const reports = receivers.map((r, i) => ({ pod: ['near', 'far'][i], ...lossReport(r.seqs, MESSAGES) }));
  // Reported for the record: at 1 msg/ms, the longest run of lost messages is the gap in ms.
  console.log(`handover loss at ${RATE} msg/s over ${MESSAGES} messages: ${JSON.stringify(reports)}`);
  for (const r of reports) {
    expect(r.duplicates).toBe(0);
    // Two handovers on the path: together less than one second of stream.
    expect(r.lost).toBeLessThan(RATE);
  }

  for (const { previous, next } of handovers) {
    // The first agent stays (idle until terminated) but holds no data-plane socket.
    expect(previous.exitCode).toBeNull();
    expect(heldSockets(previous.pid!, 'udp')).toBe(0);
    expect(heldSockets(previous.pid!, 'packet')).toBe(0);
    expect(heldSockets(next.pid!, 'udp')).toBeGreaterThan(0);
  }
  // The new agent on node 0 serves castnet-cni: an ADD wires a pod that receives the stream's group.
  await lab().addLabPod('late', 0, 'blue');
  receiver('late');
  await waitFor(() => members() >= 3, { what: 'the new pod to be a member' });
}, 180000);
