// Traffic roles for bench/dataplane.ts, bench/marketdata.ts and bench/isolation.ts, each a child process driven by lines on stdin.
//
//   send <netns> <source> <group> <port>
//     "<rate> <count> <trial> [<batch>]" sends <count> 100-byte datagrams to the group at <rate>/s
//     (sendmmsg calls of up to <batch> datagrams, default 64, paced per millisecond), each stamped
//     with the time of its call and the trial's number; answers "done <sent> <dropped> <seconds>".
//     Each payload carries the stream header of pkg/lab/stream.ts (its sequence number counts from 0
//     in each trial).
//   member <group> <port> <address>
//     A market-data member (bench/marketdata.ts), started inside its pod's namespace: a plain Node.js
//     UDP socket at the kernel's default buffer sizes, joined on <address>. "run <n> <capacity>"
//     starts tallying trial n; "count" answers the datagrams read; "summary <sent>" the tally's
//     summary (pkg/lab/stream.ts) and the namespace's UDP receive-buffer overflows during the run.
//   receive <group> <port> <netns>=<address> ...
//     One real UDP socket per receiver pod, bound to the group and joined on the pod's address (so the
//     pod's kernel reports the membership). "trial <n> [latency]" starts counting datagrams of trial n
//     only (a late datagram of an earlier trial is never credited to a later one), recording one-way
//     latencies with "latency"; "counts" answers the datagrams of the trial each socket received;
//     "total" all datagrams received since start (to tell when the pipeline is idle); "percentiles
//     <sent>" answers p50/p99 in µs over <sent> messages per receiver, a lost message counting as a
//     miss (null when the percentile falls on one).
//   flood <srcmac> <srcip>
//     A hostile pod (bench/isolation.ts), started inside its pod's namespace: "flood <seconds>" writes
//     broadcast frames (UDP to 255.255.255.255 from the pod's own addresses, so only a rate limit can
//     stop them) out of eth0 as fast as one AF_PACKET socket takes them, 64 per sendmmsg; answers
//     "done <sent> <notSent> <seconds>".
//
// Both ends stamp and read CLOCK_MONOTONIC (process.hrtime), which all processes on the machine share.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { AF_INET, IP_ADD_MEMBERSHIP, IPPROTO_IP, SOCK_CLOEXEC, SOCK_DGRAM } from '../pkg/sys/constants.js';
import { check, inNetns, libc } from '../pkg/sys/libc.js';
import { readStream, stampStream, StreamTally } from '../pkg/lab/stream.js';
import { OutDatagram, UnderlaySocket } from '../pkg/underlay/udp.js';
import { buildIPv4Frame } from '../pkg/frame/build.js';
import { VNET_HDR_LEN } from '../pkg/frame/vnet.js';
import { CaptureSet } from '../pkg/packet/capture.js';

export const PAYLOAD_BYTES = 100;
/** The trial's number in the payload (pkg/lab/stream.ts's header: send time, run, sequence). */
const TRIAL_OFFSET = 8;
const BATCH = 64;

function commands(handle: (words: string[]) => Promise<string> | string): void {
  let queue = Promise.resolve();
  createInterface({ input: process.stdin }).on('line', (line) => {
    queue = queue.then(async () => {
      process.stdout.write((await handle(line.trim().split(/\s+/))) + '\n');
    });
  });
  process.stdin.on('end', () => process.exit(0));
}

function roleSend(netns: string, source: string, group: string, port: number): void {
  const sock = UnderlaySocket.open({ address: source, port: 0, netns });
  const to = sock.peer(group, port);
  const batch: OutDatagram[] = Array.from({ length: BATCH }, () => ({
    to,
    data: Buffer.alloc(PAYLOAD_BYTES, 0x5a),
  }));
  let perCall = BATCH;
  let trial = 0;
  let seq = 0;
  const sendNow = (n: number) => {
    const now = process.hrtime.bigint();
    for (let i = 0; i < n; i++) stampStream(batch[i]!.data as Buffer, trial, seq++, now);
    sock.send(n === BATCH ? batch : batch.slice(0, n));
  };
  const run = (rate: number, count: number) =>
    new Promise<{ sent: number; seconds: number }>((resolve) => {
      const start = process.hrtime.bigint();
      let sent = 0;
      const tick = () => {
        const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
        const due = Math.min(count, Math.floor(elapsed * rate));
        while (sent < due) {
          const n = Math.min(perCall, due - sent);
          sendNow(n);
          sent += n;
        }
        if (sent < count) setTimeout(tick, 1);
        else resolve({ sent, seconds: Number(process.hrtime.bigint() - start) / 1e9 });
      };
      tick();
    });
  commands(async ([rate, count, trialNo, batch]) => {
    trial = Number(trialNo);
    seq = 0;
    perCall = Math.min(BATCH, Math.max(1, Number(batch ?? BATCH)));
    const before = sock.counters().sendDropped;
    const { sent, seconds } = await run(Number(rate), Number(count));
    const dropped = sock.counters().sendDropped - before;
    return `done ${sent - dropped} ${dropped} ${seconds}`;
  });
}

/** A socket whose only job is to hold the group membership on the pod's interface. */
function joinGroup(netns: string, group: string, address: string): number {
  return inNetns(netns, () => {
    const fd = check('socket', libc().socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const mreq = Buffer.alloc(8);
    Buffer.from(group.split('.').map(Number)).copy(mreq, 0);
    Buffer.from(address.split('.').map(Number)).copy(mreq, 4);
    check(
      `join ${group} on ${address} in ${netns}`,
      libc().setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq, 8),
    );
    return fd;
  });
}

/** The p-th percentile of `n` samples of which `sorted` are the measured ones; the rest are misses. */
function percentile(sorted: Float64Array, n: number, p: number): number | null {
  const rank = Math.min(n - 1, Math.floor(p * n));
  return rank < sorted.length ? sorted[rank]! : null;
}

function roleReceive(group: string, port: number, receivers: string[]): void {
  let trial = -1;
  let counts = receivers.map(() => 0);
  let total = 0;
  let latencies: number[] | undefined;
  receivers.forEach((spec, i) => {
    const [netns, address] = spec.split('=') as [string, string];
    const sock = UnderlaySocket.open({ address: group, port, netns });
    joinGroup(netns, group, address);
    sock.onDatagrams((batch) => {
      total += batch.length;
      const now = Number(process.hrtime.bigint());
      for (const d of batch) {
        if (d.data.length < TRIAL_OFFSET + 4 || d.data.readUInt32LE(TRIAL_OFFSET) !== trial) continue;
        counts[i]!++;
        latencies?.push((now - Number(d.data.readBigUInt64LE(0))) / 1000);
      }
    });
  });
  commands(([cmd, arg, mode]) => {
    if (cmd === 'trial') {
      trial = Number(arg);
      counts = receivers.map(() => 0);
      latencies = mode === 'latency' ? [] : undefined;
      return 'ok';
    }
    if (cmd === 'counts') return JSON.stringify(counts);
    if (cmd === 'total') return String(total);
    if (cmd === 'percentiles') {
      const n = Number(arg) * receivers.length;
      const sorted = Float64Array.from(latencies ?? []).sort();
      latencies = undefined;
      return JSON.stringify({
        n,
        lost: Math.max(0, n - sorted.length),
        p50: percentile(sorted, n, 0.5),
        p99: percentile(sorted, n, 0.99),
      });
    }
    return `error: unknown command ${JSON.stringify(cmd)}`;
  });
  process.stdout.write('ready\n');
}

/** The namespace's UDP datagrams dropped for a full receive buffer (/proc/net/snmp, Udp RcvbufErrors). */
function rcvbufErrors(): number {
  const udp = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp: '));
  const names = udp[0]!.split(/\s+/);
  return Number(udp[1]!.split(/\s+/)[names.indexOf('RcvbufErrors')]);
}

function roleMember(group: string, port: number, address: string): void {
  let run = -1;
  let tally = new StreamTally(0);
  let overflowsAtStart = rcvbufErrors();
  const sock = createSocket({ type: 'udp4', reuseAddr: true });
  sock.on('message', (msg) => {
    const h = readStream(msg);
    if (h?.run === run) tally.record(h.seq, Number(process.hrtime.bigint()));
  });
  sock.bind(port, group, () => {
    sock.addMembership(group, address);
    process.stdout.write(`ready ${sock.getRecvBufferSize()}\n`);
  });
  commands(([cmd, arg, capacity]) => {
    if (cmd === 'run') {
      run = Number(arg);
      tally = new StreamTally(Number(capacity));
      overflowsAtStart = rcvbufErrors();
      return 'ok';
    }
    if (cmd === 'count') return String(tally.count);
    if (cmd === 'summary')
      return JSON.stringify({
        ...tally.summary(Number(arg)),
        rcvbufErrors: rcvbufErrors() - overflowsAtStart,
      });
    return `error: unknown command ${JSON.stringify(cmd)}`;
  });
}

function roleFlood(srcMac: string, srcIp: string): void {
  const udp = Buffer.alloc(8 + PAYLOAD_BYTES, 0x5a);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(9, 2);
  udp.writeUInt16BE(udp.length, 4);
  const eth = buildIPv4Frame({
    dstMac: 'ff:ff:ff:ff:ff:ff',
    srcMac,
    src: srcIp,
    dst: '255.255.255.255',
    protocol: 17,
    ttl: 1,
    payload: udp,
  });
  const frame = new Uint8Array(VNET_HDR_LEN + eth.length);
  frame.set(eth, VNET_HDR_LEN);
  const frames = Array.from({ length: BATCH }, () => frame);
  const out = new CaptureSet<string>();
  const ifindex = out.add('eth0', 'eth0');
  commands(([seconds]) => {
    const start = process.hrtime.bigint();
    const until = start + BigInt(Math.round(Number(seconds) * 1e9));
    let sent = 0;
    let calls = 0;
    while (process.hrtime.bigint() < until) {
      sent += out.inject(ifindex, frames);
      calls++;
    }
    return `done ${sent} ${calls * BATCH - sent} ${Number(process.hrtime.bigint() - start) / 1e9}`;
  });
}

const [role, ...args] = process.argv.slice(2);
if (role === 'send') roleSend(args[0]!, args[1]!, args[2]!, Number(args[3]));
else if (role === 'member') roleMember(args[0]!, Number(args[1]), args[2]!);
else if (role === 'receive') roleReceive(args[0]!, Number(args[1]), args.slice(2));
else if (role === 'flood') roleFlood(args[0]!, args[1]!);
else {
  console.error(`usage: dataplane-traffic send|receive|member|flood ... (got ${JSON.stringify(role)})`);
  process.exit(2);
}
