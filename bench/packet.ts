// Benchmark of the agent's frame I/O (pkg/packet): capture → inject forwarding of 100-byte UDP
// multicast from one pod to 1 or 5 pods, against the kernel bridge forwarding the same traffic
// between the same veths, in the same run. All traffic stays in namespaces created here.
//
// Receivers are counted in the kernel (Udp IgnoredMulti: the group is joined with `autojoin`, no
// socket listens), so no receiving process competes for the CPU and both systems pay the same
// receive cost. "Lossless" means every receiver got at least (1 - LOSS_TOLERANCE) of what was sent.
import { ChildProcess } from 'node:child_process';
import { ksoftirqdPids, processCpuUs } from './proc.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { CaptureSet } from '../pkg/packet/capture.js';
import { DEFAULT_CAPTURE_RCVBUF, openCaptureSocket, readPacketStats } from '../pkg/packet/socket.js';
import { NetnsFixture, ip } from '../test/harness/netns-fixture.js';
import { inNetns, libc } from '../pkg/sys/libc.js';
import { sleep } from '../pkg/base/async.js';

const GROUP = '239.1.1.1';
const PORT = 5000;
const TRIAL_SECONDS = Number(process.env.BENCH_TRIAL_SECONDS ?? 1);
const LOSS_TOLERANCE = 0.001;
const FIXED_RATE = 20000;
const FANOUTS = [1, 5];
/** Capture queue per interface, both threading variants. */
const RCVBUF = Number(process.env.BENCH_RCVBUF ?? DEFAULT_CAPTURE_RCVBUF);

interface Trial {
  offeredPps: number;
  /** What the sender actually achieved; below the offer, the sender is the limit. */
  sentPps: number;
  /** The slowest receiver's rate. */
  deliveredPps: number;
  loss: number;
  /** CPU of the pipeline (sender + forwarder + ksoftirqd) per delivered frame, µs. */
  cpuUsPerFrame: number;
  /** The castnet forwarder process alone, per delivered frame, µs (user, system). */
  forwarderUserUs: number;
  forwarderSysUs: number;
  captureDrops: number;
}

const fx = new NetnsFixture('cnbp');
const nsPath = (ns: string) => fx.path(ns);
const ksoftirqd = ksoftirqdPids();

function ignoredMulti(ns: string): number {
  const snmp = inNetns(nsPath(ns), () => readFileSync('/proc/thread-self/net/snmp', 'utf8'));
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  const i = names.split(/\s+/).indexOf('IgnoredMulti');
  return Number(values.split(/\s+/)[i]);
}

class Sender {
  private readonly pending: ((line: string) => void)[] = [];
  readonly pid: number;
  constructor(private readonly child: ChildProcess) {
    this.pid = child.pid!;
    createInterface({ input: child.stdout! }).on('line', (l) => this.pending.shift()?.(l));
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  }
  send(rate: number, count: number): Promise<{ sent: number; dropped: number; seconds: number }> {
    return new Promise((resolve) => {
      this.pending.push((line) => {
        const [, sent, dropped, seconds] = line.split(' ').map(Number);
        resolve({ sent, dropped, seconds });
      });
      this.child.stdin!.write(`${rate} ${count}\n`);
    });
  }
}

async function main(): Promise<void> {
  const node = fx.netns('n');
  const src = fx.netns('s');
  const receivers = [1, 2, 3, 4, 5].map((i) => fx.netns(`r${i}`));
  for (const ns of [node, src, ...receivers]) {
    fx.exec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
  }
  fx.veth(node, 'hs', src, 'eth0', undefined, '10.79.0.1/24');
  ip('-n', src, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
  receivers.forEach((r, i) => {
    fx.veth(node, `hr${i + 1}`, r, 'eth0', undefined, `10.79.0.${i + 2}/24`);
    ip('-n', r, 'addr', 'add', `${GROUP}/32`, 'dev', 'eth0', 'autojoin');
  });

  const senderJs = join(import.meta.dirname, 'packet-sender.js');
  const sender = new Sender(fx.spawn(src, process.execPath, [senderJs, '10.79.0.1', GROUP, String(PORT)]));
  await sender.send(1000, 10); // warm-up; also proves the sender is up

  async function trial(label: string, fanout: number, rate: number, drops: () => number): Promise<Trial> {
    const count = Math.round(rate * TRIAL_SECONDS);
    const rx0 = receivers.slice(0, fanout).map(ignoredMulti);
    const pipeline = () =>
      processCpuUs(sender.pid) + ksoftirqd.reduce((sum, pid) => sum + processCpuUs(pid), 0);
    const cpu0 = pipeline();
    const fwd0 = process.cpuUsage();
    const drops0 = drops();
    const { sent, seconds } = await sender.send(rate, count);
    // Wait until every queue has drained (receiver counters stand still): a frame still queued is
    // late, not lost, and must not be credited to the next trial either.
    let rx1 = receivers.slice(0, fanout).map(ignoredMulti);
    for (let waited = 0; waited < 3000; waited += 100) {
      await sleep(100);
      const now = receivers.slice(0, fanout).map(ignoredMulti);
      const settled = now.every((v, i) => v === rx1[i]);
      rx1 = now;
      if (settled) break;
    }
    const fwd = process.cpuUsage(fwd0);
    const cpu = pipeline() - cpu0 + fwd.user + fwd.system;
    const minDelivered = Math.min(...rx1.map((v, i) => v - rx0[i]));
    const delivered = Math.max(
      1,
      rx1.reduce((sum, v, i) => sum + v - rx0[i], 0),
    );
    const t = {
      offeredPps: rate,
      sentPps: Math.round(sent / seconds),
      deliveredPps: Math.round(minDelivered / seconds),
      loss: 1 - minDelivered / count,
      cpuUsPerFrame: cpu / delivered,
      forwarderUserUs: fwd.user / delivered,
      forwarderSysUs: fwd.system / delivered,
      captureDrops: drops() - drops0,
    };
    console.error(
      `  trial fan-out ${fanout} ${label}: offered ${rate}/s sent ${t.sentPps}/s delivered ${t.deliveredPps}/s` +
        ` loss ${(t.loss * 100).toFixed(2)}% capture drops ${t.captureDrops}`,
    );
    return t;
  }

  /**
   * Highest offered rate every receiver gets losslessly: doubling, then bisection. Stops where the
   * sender itself cannot keep up (marked sender-limited).
   */
  async function losslessRate(
    run: (rate: number) => Promise<Trial>,
  ): Promise<{ best: Trial; senderLimited: boolean }> {
    let best: Trial | undefined;
    let badRate = 0;
    for (let rate = 10000; rate <= 1_280_000; rate *= 2) {
      const t = await run(rate);
      if (t.loss > LOSS_TOLERANCE) {
        badRate = rate;
        break;
      }
      best = t;
      if (t.sentPps < 0.95 * rate) return { best, senderLimited: true };
    }
    let lo = best?.offeredPps ?? 0;
    let hi = badRate;
    for (let i = 0; hi && i < 5; i++) {
      const mid = Math.round((lo + hi) / 2 / 1000) * 1000;
      if (mid <= lo || mid >= hi) break;
      const t = await run(mid);
      if (t.loss > LOSS_TOLERANCE) hi = mid;
      else [lo, best] = [mid, t];
    }
    return { best: best ?? (await run(1000)), senderLimited: false };
  }

  const results: Result[] = [];
  for (const fanout of FANOUTS) {
    const ports = ['hr1', 'hr2', 'hr3', 'hr4', 'hr5'].slice(0, fanout);

    // (a) the kernel: a bridge that floods multicast to every port (no snooping).
    ip('-n', node, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0');
    for (const p of ['hs', ...ports]) ip('-n', node, 'link', 'set', p, 'master', 'br0');
    ip('-n', node, 'link', 'set', 'br0', 'up');
    const kernelRun = (rate: number) => trial('kernel-bridge', fanout, rate, () => 0);
    const kernel = { ...(await losslessRate(kernelRun)), fixed: await kernelRun(FIXED_RATE) };
    ip('-n', node, 'link', 'del', 'br0');

    // (b) castnet's frame I/O: capture on the sender's veth, inject into each receiver's.
    const cap = new CaptureSet<string>({ netns: nsPath(node), rcvbuf: RCVBUF });
    const src = cap.add('hs', 'src');
    const targets = ports.map((p) => cap.add(p, p));
    // The data plane's pattern: a decision per frame, queued per target, flushed by the set after
    // the handler as one sendmmsg run per target.
    cap.onFrames((b) => {
      if (b.ifindex !== src) return;
      for (const f of b.frames) for (const t of targets) cap.queue(t, f);
    });
    const castnetRun = (rate: number) => trial('castnet', fanout, rate, () => cap.counters().dropped);
    const castnet = { ...(await losslessRate(castnetRun)), fixed: await castnetRun(FIXED_RATE) };
    const counters = cap.counters();
    cap.dispose();

    // (c) the alternative threading: a worker owns the capture socket (blocking poll + recvmmsg)
    // and posts batches; the main thread injects as in (b).
    const workerSet = new CaptureSet<string>({ netns: nsPath(node) });
    const workerTargets = ports.map((p) => workerSet.add(p, p));
    const srcFd = inNetns(nsPath(node), () => openCaptureSocket(workerSet.ifindexOf('hs'), RCVBUF));
    const control = new SharedArrayBuffer(8);
    const shared = new Int32Array(control); // [stop flag, batches in flight]
    const worker = new Worker(join(import.meta.dirname, 'packet-capture-worker.js'), {
      workerData: { fd: srcFd, control },
    });
    worker.on('message', ({ buf, lens }: { buf: Uint8Array; lens: Uint32Array }) => {
      const frames = Buffer.from(buf.buffer);
      for (let i = 0, off = 0; i < lens.length; off += lens[i++]) {
        const f = frames.subarray(off, off + lens[i]);
        for (const t of workerTargets) workerSet.queue(t, f);
      }
      workerSet.flush();
      Atomics.sub(shared, 1, 1);
      Atomics.notify(shared, 1);
    });
    let workerDrops = 0;
    const workerRun = (rate: number) =>
      trial('worker-capture', fanout, rate, () => (workerDrops += readPacketStats(srcFd).drops));
    const viaWorker = { ...(await losslessRate(workerRun)), fixed: await workerRun(FIXED_RATE) };
    Atomics.store(shared, 0, 1);
    await new Promise((r) => worker.once('exit', r));
    libc().close(srcFd);
    workerSet.dispose();

    const summary = (r: typeof kernel) => ({
      lossless_pps: r.best.deliveredPps,
      sender_limited: r.senderLimited,
      cpu_us_per_frame: round(r.fixed.cpuUsPerFrame),
    });
    const result: Result = {
      fanout,
      kernel_bridge: summary(kernel),
      castnet: {
        ...summary(castnet),
        forwarder_user_us_per_frame: round(castnet.fixed.forwarderUserUs),
        forwarder_sys_us_per_frame: round(castnet.fixed.forwarderSysUs),
        counters,
      },
      castnet_worker_capture: {
        ...summary(viaWorker),
        forwarder_user_us_per_frame: round(viaWorker.fixed.forwarderUserUs),
        forwarder_sys_us_per_frame: round(viaWorker.fixed.forwarderSysUs),
      },
      ratio_lossless_pps: round(castnet.best.deliveredPps / kernel.best.deliveredPps),
      ratio_cpu_per_frame: round(castnet.fixed.cpuUsPerFrame / kernel.fixed.cpuUsPerFrame),
      trials: { kernel_bridge: kernel, castnet, castnet_worker_capture: viaWorker },
    };
    results.push(result);
    console.error(JSON.stringify({ ...result, trials: undefined }));
  }

  const dir = join(import.meta.dirname, '..', '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const out = {
    bench: 'packet',
    date: new Date().toISOString(),
    payload_bytes: 100,
    trial_seconds: TRIAL_SECONDS,
    loss_tolerance: LOSS_TOLERANCE,
    cpu_measured_at_pps: FIXED_RATE,
    notes: [
      'lossless_pps: the slowest receiver, at the highest offered rate with loss <= loss_tolerance',
      'sender_limited: the search stopped because the sender could not offer more; the system may carry more',
      'cpu_us_per_frame: sender + forwarder + ksoftirqd CPU per delivered frame at cpu_measured_at_pps',
      'forwarder_*_us_per_frame: the castnet process alone (capture, inject and the deliveries it triggers)',
      'castnet_worker_capture: the alternative threading (a worker thread polls and reads, the main thread injects)',
    ],
    results,
  };
  writeFileSync(join(dir, 'packet.json'), JSON.stringify(out, null, 2) + '\n');
  printTable(results);
}

interface Result {
  fanout: number;
  kernel_bridge: { lossless_pps: number; sender_limited: boolean; cpu_us_per_frame: number };
  castnet: {
    lossless_pps: number;
    sender_limited: boolean;
    cpu_us_per_frame: number;
    forwarder_user_us_per_frame: number;
    forwarder_sys_us_per_frame: number;
    counters: object;
  };
  castnet_worker_capture: {
    lossless_pps: number;
    sender_limited: boolean;
    cpu_us_per_frame: number;
    forwarder_user_us_per_frame: number;
    forwarder_sys_us_per_frame: number;
  };
  ratio_lossless_pps: number;
  ratio_cpu_per_frame: number;
  trials?: object;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function printTable(results: Result[]): void {
  const cols = (...c: string[]) =>
    console.log(c.map((x, i) => (i < 2 ? x.padEnd(15) : x.padStart(16))).join(''));
  cols('fan-out', 'system', 'lossless pps', `µs/frame@${FIXED_RATE / 1000}k`, 'fwd usr+sys µs');
  for (const r of results) {
    const limited = (x: { lossless_pps: number; sender_limited: boolean }) =>
      `${x.sender_limited ? '>=' : ''}${x.lossless_pps}`;
    cols(
      String(r.fanout),
      'kernel-bridge',
      limited(r.kernel_bridge),
      String(r.kernel_bridge.cpu_us_per_frame),
      '-',
    );
    cols(
      '',
      'castnet',
      limited(r.castnet),
      String(r.castnet.cpu_us_per_frame),
      `${r.castnet.forwarder_user_us_per_frame}+${r.castnet.forwarder_sys_us_per_frame}`,
    );
    cols(
      '',
      'worker-capture',
      limited(r.castnet_worker_capture),
      String(r.castnet_worker_capture.cpu_us_per_frame),
      `${r.castnet_worker_capture.forwarder_user_us_per_frame}+${r.castnet_worker_capture.forwarder_sys_us_per_frame}`,
    );
    cols('', 'ratio castnet/kernel', String(r.ratio_lossless_pps), String(r.ratio_cpu_per_frame), '');
  }
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => fx.cleanup());
