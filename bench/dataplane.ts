// make bench-dataplane: castnet's data plane against the kernel's bridge + VXLAN flooding, in the
// same run, on the same node topology, at fan-out 5 (1 receiver on the sender's node, 2 on each of
// two remote nodes), with 100-byte UDP payloads to one multicast group. Method and figures:
// docs/benchmarks.md. All traffic stays inside the namespaces built here; they are removed on exit,
// on failure and on Ctrl-C.
//
// (a) castnet: the real lab (pkg/lab: one `castnet agent` per node, pods wired by castnet-cni), in
//     wire format version 1 without a key (unauthenticated), and castnet_authenticated: the same
//     in version 2, the default (per-pair keys, docs/wire-format.md), alternating with it.
// (b) kernel: per node a Linux bridge (snooping off) with the pods' veths and a VXLAN device whose
//     all-zero FDB entries flood every other node, on an identical underlay (pkg/lab/topology).
// BENCH_DATAPLANE_TOPOLOGY=dense (the headline, bench/results/dataplane.json): 3 nodes, every one
// with members, so both systems do the same work. =sparse (bench/results/dataplane-sparse.json):
// a 4th node without members, which only flooding sends to.
import { CLK_TCK, ksoftirqdPids, processCpuUs } from './proc.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import type { Lab } from '../pkg/lab/runner.js';
import { sleep } from '../pkg/base/async.js';
import { run } from '../pkg/sys/exec.js';
import { inNetns } from '../pkg/sys/libc.js';
import {
  netnsPath,
  RECEIVERS,
  ROOT,
  SENDER,
  startCastnet,
  startKernel,
  tearDownOnSignals,
  Traffic,
  type Cleanups,
  type System,
} from './dataplane-systems.js';

const GROUP = '239.1.1.1';
const PORT = 5000;
const TOPOLOGY = process.env.BENCH_DATAPLANE_TOPOLOGY ?? 'dense';
if (TOPOLOGY !== 'dense' && TOPOLOGY !== 'sparse')
  throw new Error(`BENCH_DATAPLANE_TOPOLOGY: must be dense or sparse, not ${JSON.stringify(TOPOLOGY)}`);
const NODES = TOPOLOGY === 'dense' ? 3 : 4;
const RESULT_FILE = TOPOLOGY === 'dense' ? 'dataplane.json' : 'dataplane-sparse.json';
/**
 * Every trial sends this many seconds' worth of messages: long enough that buffers (castnet's
 * capture and underlay sockets hold tens of MiB) cannot absorb a rate the path cannot sustain.
 */
const TRIAL_SECONDS = Number(process.env.BENCH_TRIAL_SECONDS ?? 10);
if (!(TRIAL_SECONDS >= 10)) throw new Error(`BENCH_TRIAL_SECONDS: at least 10, not ${TRIAL_SECONDS}`);
/** After the last message is sent, receivers have this long to get the rest: later is lost. */
const DRAIN_MS = 200;
/** Lossless: nothing lost, or less than this fraction (reported beside the figure). */
const LOSS_TOLERANCE = 1e-4;
/**
 * CPU per message is measured at a rate both systems carry without loss on this machine (a lossy
 * trial would count work per message sent that was never done for the lost ones).
 */
const CPU_RATE = Number(process.env.BENCH_CPU_RATE ?? 10000);
const CPU_REPEATS = Number(process.env.BENCH_CPU_REPEATS ?? 3);
const SEARCH_ROUNDS = Number(process.env.BENCH_SEARCH_ROUNDS ?? 1);
/**
 * Sending processes in the sender pod, each offering an equal share of the rate. 2 by default: with
 * one, the kernel's forwarding (done in the sending thread's softirq) is pinned to one core.
 */
const SENDERS = Number(process.env.BENCH_SENDERS ?? 2);
const LATENCY_RATE = 10000;
const BISECTION_STEPS = Number(process.env.BENCH_BISECTION_STEPS ?? 4);
/**
 * Nice value for every process of the benchmark (agents, senders, receivers, this one), the same in
 * both systems: on a shared machine it keeps other work from skewing rates and latencies. 0: off.
 */
const NICE = Number(process.env.BENCH_NICE ?? -10);

const KSOFTIRQD = ksoftirqdPids();

// ---- measurement sources -------------------------------------------------------------------------

/** Busy time of the whole machine (all CPUs, everything but idle and iowait), µs. */
function machineBusyUs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return ((total - f[3]! - f[4]!) * 1e6) / CLK_TCK;
}

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Packets per interface of a namespace (/proc/net/dev as seen from inside it). */
function interfacePackets(ns: string): Map<string, { rx: number; tx: number }> {
  const text = inNetns(netnsPath(ns), () => readFileSync('/proc/thread-self/net/dev', 'utf8'));
  const out = new Map<string, { rx: number; tx: number }>();
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest) continue;
    const f = rest.trim().split(/\s+/).map(Number);
    out.set(name!.trim(), { rx: f[1]!, tx: f[9]! });
  }
  return out;
}

// ---- trials --------------------------------------------------------------------------------------

interface Trial {
  offeredPps: number;
  sent: number;
  /** The rate the senders achieved; below the offer, the senders were the limit. */
  sentPps: number;
  /** Per receiver: datagrams of this trial received by the end of the drain window. */
  received: number[];
  /** The slowest receiver's datagrams per second of sending: the rate counted at the receivers. */
  deliveredPps: number;
  /** Messages missing at the receivers (summed), and as a fraction of sent x receivers. */
  lost: number;
  lossRatio: number;
  /** Copies beyond one per message at some receiver. */
  duplicates: number;
  /** Nothing lost (or less than LOSS_TOLERANCE), nothing duplicated, every message sent. */
  lossless: boolean;
  /** Machine busy CPU per message sent, µs. */
  cpuUsPerMsg: number;
  agentCpuUsPerMsg: number;
  senderCpuUsPerMsg: number;
  receiverCpuUsPerMsg: number;
  /** Agents + senders + receivers + ksoftirqd: the processes of the benchmark alone, per message. */
  pipelineCpuUsPerMsg: number;
  /** Datagrams the sender's node put on the underlay, per message. */
  underlayPktsPerMsg: number;
  /** Datagrams the underlay delivered to each other node, per message. */
  underlayPktsPerNode: Record<string, number>;
  /** One-way latency over every message x receiver, a lost one counting as a miss (null: a miss). */
  latency?: { n: number; lost: number; p50: number | null; p99: number | null };
}

let trialNumber = 0;

class Bench {
  readonly tx: Traffic[];
  readonly rx: Traffic;
  constructor(readonly sys: System) {
    this.tx = Array.from(
      { length: SENDERS },
      () => new Traffic(['send', netnsPath(sys.sender.ns), sys.sender.ip, GROUP, String(PORT)]),
    );
    this.rx = new Traffic([
      'receive',
      GROUP,
      String(PORT),
      ...sys.receivers.map((r) => `${netnsPath(r.ns)}=${r.ip}`),
    ]);
  }

  async counts(): Promise<number[]> {
    return JSON.parse(await this.rx.ask('counts')) as number[];
  }

  /**
   * Waits until the receivers have been idle for a while (up to 30 s): what an overloaded earlier
   * trial left queued must not load this one. Not part of any measurement.
   */
  private async quiesce(): Promise<void> {
    let last = Number(await this.rx.ask('total'));
    for (let idle = 0, waited = 0; idle < 10 && waited < 30000; waited += 20) {
      await sleep(20);
      const now = Number(await this.rx.ask('total'));
      idle = now === last ? idle + 1 : 0;
      last = now;
    }
  }

  private cpu() {
    return {
      busy: machineBusyUs(),
      agents: this.sys.agentPids.reduce((s, p) => s + processCpuUs(p), 0),
      senders: this.tx.reduce((sum, t) => sum + processCpuUs(t.pid), 0),
      receivers: processCpuUs(this.rx.pid),
      ksoftirqd: KSOFTIRQD.reduce((sum, p) => sum + processCpuUs(p), 0),
      ports: interfacePackets(this.sys.topo.underlayNs),
    };
  }

  /** Sends `count` messages at `rate`, split over the senders; total sent and the slowest's seconds. */
  private async send(
    rate: number,
    count: number,
    trial: number,
    batch?: number,
  ): Promise<{ sent: number; seconds: number }> {
    const answers = await Promise.all(
      this.tx.map((t, i) => {
        const share = Math.floor(count / SENDERS) + (i < count % SENDERS ? 1 : 0);
        return t.ask(`${rate / SENDERS} ${share} ${trial}${batch ? ` ${batch}` : ''}`);
      }),
    );
    const parsed = answers.map((a) => a.split(' ').map(Number));
    return {
      sent: parsed.reduce((sum, p) => sum + p[1]!, 0),
      seconds: Math.max(...parsed.map((p) => p[3]!)),
    };
  }

  /** One trial: TRIAL_SECONDS of messages at `rate`, then at most DRAIN_MS for the receivers. */
  async trial(rate: number, opts: { latency?: boolean; batch?: number } = {}): Promise<Trial> {
    const count = Math.round(rate * TRIAL_SECONDS);
    await this.quiesce();
    const id = ++trialNumber;
    await this.rx.ask(`trial ${id}${opts.latency ? ' latency' : ''}`);
    const c0 = this.cpu();
    const { sent, seconds } = await this.send(rate, count, id, opts.batch);
    let rx = await this.counts();
    const drainEnd = Date.now() + DRAIN_MS;
    while (!rx.every((v) => v >= sent) && Date.now() < drainEnd) {
      await sleep(5);
      rx = await this.counts();
    }
    const c1 = this.cpu();
    const latency = opts.latency
      ? (JSON.parse(await this.rx.ask(`percentiles ${sent}`)) as Trial['latency'])
      : undefined;
    const received = rx;
    const lost = received.reduce((sum, n) => sum + Math.max(0, sent - n), 0);
    const duplicates = received.reduce((sum, n) => sum + Math.max(0, n - sent), 0);
    const lossRatio = lost / Math.max(1, sent * received.length);
    const per = (x: number) => x / Math.max(1, sent);
    const port = (i: number, dir: 'rx' | 'tx') => c1.ports.get(`n${i}`)![dir] - c0.ports.get(`n${i}`)![dir];
    const t: Trial = {
      offeredPps: rate,
      sent,
      sentPps: Math.round(sent / seconds),
      received,
      deliveredPps: Math.round(Math.min(...received.map((n) => Math.min(n, sent))) / seconds),
      lost,
      lossRatio,
      duplicates,
      lossless: sent === count && duplicates === 0 && lossRatio < LOSS_TOLERANCE,
      cpuUsPerMsg: per(c1.busy - c0.busy),
      agentCpuUsPerMsg: per(c1.agents - c0.agents),
      senderCpuUsPerMsg: per(c1.senders - c0.senders),
      receiverCpuUsPerMsg: per(c1.receivers - c0.receivers),
      pipelineCpuUsPerMsg: per(
        c1.agents -
          c0.agents +
          c1.senders -
          c0.senders +
          c1.receivers -
          c0.receivers +
          c1.ksoftirqd -
          c0.ksoftirqd,
      ),
      underlayPktsPerMsg: per(port(SENDER.node, 'rx')),
      underlayPktsPerNode: Object.fromEntries(
        this.sys.topo.nodes
          .filter((n) => n.index !== SENDER.node)
          .map((n) => [n.name, round(per(port(n.index, 'tx')))]),
      ),
      latency,
    };
    console.error(
      `  ${this.sys.name.padEnd(21)} offered ${rate}/s sent ${t.sentPps}/s delivered ${t.deliveredPps}/s` +
        ` lost ${lost} (${(lossRatio * 100).toFixed(4)} %) dup ${duplicates}: ${t.lossless ? 'lossless' : 'LOSS'}`,
    );
    return t;
  }

  /**
   * The highest offered rate every receiver gets (lossless as defined above): doubling from 10k/s,
   * then bisection. Stops where the senders themselves cannot offer the rate (sender_limited).
   */
  async losslessRate(): Promise<{ best?: Trial; senderLimited: boolean; trials: Trial[] }> {
    const trials: Trial[] = [];
    const at = async (rate: number) => {
      const t = await this.trial(rate);
      trials.push(t);
      return t;
    };
    let best: Trial | undefined;
    let bad = 0;
    for (let rate = 10000; rate <= 640000; rate *= 2) {
      const t = await at(rate);
      if (!t.lossless) {
        bad = rate;
        break;
      }
      best = t;
      if (t.sentPps < 0.95 * rate) return { best, senderLimited: true, trials };
    }
    let lo = best?.offeredPps ?? 0;
    let hi = bad;
    for (let i = 0; hi && i < BISECTION_STEPS; i++) {
      const mid = Math.round((lo + hi) / 2 / 1000) * 1000;
      if (mid <= lo || mid >= hi) break;
      const t = await at(mid);
      if (t.lossless) [lo, best] = [mid, t];
      else hi = mid;
    }
    return { best, senderLimited: false, trials };
  }

  close(): void {
    for (const t of this.tx) t.kill();
    this.rx.kill();
  }
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The machine's 1, 5 and 15 minute load averages: other work on this shared machine. */
function loadAverage(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

function roundOrNull(x: number | null, digits = 2): number | null {
  return x === null ? null : round(x, digits);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function waitForMembers(lab: Lab, want: number): Promise<void> {
  const deadline = Date.now() + 10000;
  while (lab.directory.memberships.filter((m) => m.group === GROUP).length < want) {
    if (Date.now() > deadline)
      throw new Error(`the ${want} joins of ${GROUP} did not reach the lookup service`);
    await sleep(20);
  }
}

// ---- main ----------------------------------------------------------------------------------------

const cleanups: Cleanups = [];
const cleanup = tearDownOnSignals(cleanups);

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = loadAverage();
  console.error(`building castnet lab and kernel baseline (${NODES} nodes)`);
  const layout = { nodes: NODES, sender: SENDER, receivers: RECEIVERS };
  const castnetSys = await startCastnet(layout, cleanups, (l) => console.error(`  lab: ${l}`));
  const authSys = await startCastnet(
    layout,
    cleanups,
    (l) => console.error(`  lab (authenticated): ${l}`),
    'castnet_authenticated',
  );
  const kernelSys = await startKernel(layout, cleanups);
  for (const s of [castnetSys, authSys, kernelSys]) {
    await run('ip', ['-n', s.sender.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
  }
  // castnet and castnet_authenticated run in the same alternation, so the authentication cost is
  // compared under the same machine load.
  const benches = [new Bench(castnetSys), new Bench(authSys), new Bench(kernelSys)];
  cleanups.push(() => benches.forEach((b) => b.close()));
  for (const b of benches) await b.rx.ask(); // "ready": sockets bound and groups joined
  if (NICE) {
    const pids = [
      process.pid,
      ...castnetSys.agentPids,
      ...authSys.agentPids,
      ...benches.flatMap((b) => [b.rx.pid, ...b.tx.map((t) => t.pid)]),
    ];
    for (const pid of pids) setPriority(pid, NICE);
  }
  await waitForMembers(castnetSys.lab, RECEIVERS.length);
  await waitForMembers(authSys.lab, RECEIVERS.length);
  // Warm-up: bridges learn, JIT compiles, and each path proves it delivers at all.
  for (const b of benches) {
    const t = await b.trial(5000);
    if (!t.lossless) {
      // Where it was lost: the agents' drop counters and socket counters.
      const lab =
        b.sys.name === 'castnet' ? castnetSys.lab : b.sys.name === 'kernel' ? undefined : authSys.lab;
      for (const [i] of (lab?.topology.nodes ?? []).entries())
        console.error(`  node ${i}: ${JSON.stringify(await lab!.agentStats(i))}`);
      throw new Error(`${b.sys.name}: warm-up at 5000/s was not delivered completely`);
    }
  }

  console.error('lossless rate search');
  // Other load on the machine only ever lowers a search's result: the best of alternating rounds.
  type Search = Awaited<ReturnType<Bench['losslessRate']>>;
  const rounds: Search[][] = benches.map(() => []);
  for (let k = 0; k < SEARCH_ROUNDS; k++) {
    for (const [i, b] of benches.entries()) rounds[i]!.push(await b.losslessRate());
  }
  const search = rounds.map((r) =>
    r.reduce((a, b) => ((b.best?.deliveredPps ?? 0) > (a.best?.deliveredPps ?? 0) ? b : a)),
  );
  console.error(`CPU and underlay at ${CPU_RATE}/s (${CPU_REPEATS} alternating runs each)`);
  const cpuRuns: Trial[][] = benches.map(() => []);
  for (let k = 0; k < CPU_REPEATS; k++) {
    for (const [i, b] of benches.entries()) cpuRuns[i]!.push(await b.trial(CPU_RATE));
  }
  console.error(`latency at ${LATENCY_RATE}/s`);
  const latency: Trial[] = [];
  // One datagram per send call, so each stamp is taken right before its own datagram leaves.
  for (const b of benches) latency.push(await b.trial(LATENCY_RATE, { latency: true, batch: 1 }));

  const summary = benches.map((b, i) => {
    const s = search[i]!;
    const cpu = cpuRuns[i]!;
    const rssKb = Math.max(0, ...b.sys.agentPids.map((p) => statusKb(p, 'VmRSS')));
    const hwmKb = Math.max(0, ...b.sys.agentPids.map((p) => statusKb(p, 'VmHWM')));
    const lat = latency[i]!;
    return {
      delivered_pps: s.best?.deliveredPps ?? 0,
      delivered_pps_rounds: rounds[i]!.map((r) => r.best?.deliveredPps ?? 0),
      delivered_loss_ratio: s.best?.lossRatio ?? null,
      delivered_lost: s.best?.lost ?? null,
      lowest_lossy_offered_pps: s.trials
        .filter((t) => !t.lossless)
        .reduce<number | null>((m, t) => (m === null || t.offeredPps < m ? t.offeredPps : m), null),
      sender_limited: s.senderLimited,
      cpu_runs_loss_ratio: round(Math.max(...cpu.map((t) => t.lossRatio)), 6),
      cpu_us_per_msg: round(median(cpu.map((t) => t.cpuUsPerMsg))),
      agent_cpu_us_per_msg: round(median(cpu.map((t) => t.agentCpuUsPerMsg))),
      pipeline_cpu_us_per_msg: round(median(cpu.map((t) => t.pipelineCpuUsPerMsg))),
      sender_cpu_us_per_msg: round(median(cpu.map((t) => t.senderCpuUsPerMsg))),
      receiver_cpu_us_per_msg: round(median(cpu.map((t) => t.receiverCpuUsPerMsg))),
      underlay_pkts_per_msg: round(median(cpu.map((t) => t.underlayPktsPerMsg))),
      underlay_pkts_per_node: cpu[Math.floor(cpu.length / 2)]!.underlayPktsPerNode,
      latency_p50_us: roundOrNull(lat.latency!.p50, 1),
      latency_p99_us: roundOrNull(lat.latency!.p99, 1),
      latency_lost: lat.latency!.lost,
      latency_loss_ratio: round(lat.lossRatio, 6),
      agent_rss_mb: b.sys.agentPids.length ? round(hwmKb / 1024, 1) : 0,
      agent_rss_now_mb: b.sys.agentPids.length ? round(rssKb / 1024, 1) : 0,
      agent_rss_mb_per_node: b.sys.agentPids.map((p) => round(statusKb(p, 'VmHWM') / 1024, 1)),
      trials: { search: rounds[i]!.map((r) => r.trials), cpu, latency: lat },
    };
  });
  const [c, a, k] = summary as [(typeof summary)[0], (typeof summary)[0], (typeof summary)[0]];
  const ratio = (a: number | null, b: number | null) => (a !== null && b ? round(a / b) : null);
  const out = {
    bench: TOPOLOGY === 'dense' ? 'dataplane' : 'dataplane-sparse',
    topology:
      TOPOLOGY === 'dense'
        ? 'dense: 3 nodes, every node has members (equal work for both systems)'
        : 'sparse: 4 nodes, node-3 has no members (only flooding sends to it)',
    date: new Date().toISOString(),
    nodes: NODES,
    member_nodes: 3,
    fanout: RECEIVERS.length,
    senders: SENDERS,
    payload_bytes: 100,
    trial_seconds: TRIAL_SECONDS,
    drain_ms: DRAIN_MS,
    loss_tolerance: LOSS_TOLERANCE,
    search_rounds: SEARCH_ROUNDS,
    cpu_measured_at_pps: CPU_RATE,
    latency_measured_at_pps: LATENCY_RATE,
    nice: NICE,
    agent_node_args: process.env.BENCH_AGENT_NODE_ARGS ?? '',
    load_average_at_start: loadAtStart,
    load_average_at_end: loadAverage(),
    notes: [
      "delivered_pps: counted at the receivers: the slowest receiver socket's messages of the trial divided by the seconds of sending, at the highest offered rate that was lossless (doubling from 10k/s, then bisection; each trial trial_seconds of messages, then at most drain_ms for the receivers; whatever arrives later is lost); best of search_rounds alternating searches (delivered_pps_rounds: each)",
      'lossless: no duplicate, every message sent, and lost / (sent x receivers) below loss_tolerance (0.01 %); delivered_loss_ratio and delivered_lost report what the figure lost; lowest_lossy_offered_pps the lowest offered rate that was not (null: none was)',
      'sender_limited: the senders could not offer more; the system may carry more than delivered_pps',
      'cpu_us_per_msg: busy time of the whole machine (/proc/stat, all CPUs, everything but idle and iowait) per message sent, median of the alternating trials at cpu_measured_at_pps (trial_seconds each, cpu_runs_loss_ratio: the most any lost); includes senders and receivers, which cost the same in both systems',
      'pipeline_cpu_us_per_msg: utime+stime of the processes of the benchmark alone (agents, senders, receivers, ksoftirqd), per message: unlike cpu_us_per_msg, not inflated by anything else running on the machine',
      "agent_/sender_/receiver_cpu_us_per_msg: the parts (kernel forwarding done in a process context counts to that process: for the kernel system most of it runs in the sender's send call)",
      "underlay_pkts_per_msg: packets the sender's node put on the underlay bridge per message (rx of its port); underlay_pkts_per_node: packets the bridge delivered to each other node per message",
      'latency: sender stamps CLOCK_MONOTONIC into each payload, the receiver process subtracts on reading it (same clock); percentiles over every message x receiver of a trial_seconds trial at latency_measured_at_pps, a lost message counting as a miss (null: the percentile falls on misses); latency_lost and latency_loss_ratio beside them',
      'agent_rss_mb: the largest VmHWM (peak resident set) among the agents at the end of the run',
    ],
    castnet: { ...c, trials: undefined },
    castnet_authenticated: { ...a, trials: undefined },
    kernel: { ...k, trials: undefined },
    /** castnet_authenticated over castnet: the cost of wire format version 2 (goal: CPU <= 1.3). */
    authenticated_ratios: {
      delivered_pps: ratio(a.delivered_pps, c.delivered_pps),
      cpu_us_per_msg: ratio(a.cpu_us_per_msg, c.cpu_us_per_msg),
      pipeline_cpu_us_per_msg: ratio(a.pipeline_cpu_us_per_msg, c.pipeline_cpu_us_per_msg),
      agent_cpu_us_per_msg: ratio(a.agent_cpu_us_per_msg, c.agent_cpu_us_per_msg),
      latency_p50_us: ratio(a.latency_p50_us, c.latency_p50_us),
      latency_p99_us: ratio(a.latency_p99_us, c.latency_p99_us),
    },
    ratios: {
      delivered_pps: ratio(c.delivered_pps, k.delivered_pps),
      cpu_us_per_msg: ratio(c.cpu_us_per_msg, k.cpu_us_per_msg),
      pipeline_cpu_us_per_msg: ratio(c.pipeline_cpu_us_per_msg, k.pipeline_cpu_us_per_msg),
      underlay_pkts_per_msg: ratio(c.underlay_pkts_per_msg, k.underlay_pkts_per_msg),
      latency_p50_us: ratio(c.latency_p50_us, k.latency_p50_us),
      latency_p99_us: ratio(c.latency_p99_us, k.latency_p99_us),
    },
    trials: { castnet: c.trials, castnet_authenticated: a.trials, kernel: k.trials },
    seconds: Math.round((Date.now() - started) / 1000),
  };
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, RESULT_FILE), JSON.stringify(out, null, 2) + '\n');
  printSummary(out);
}

function printSummary(out: {
  castnet: Record<string, unknown>;
  castnet_authenticated: Record<string, unknown>;
  kernel: Record<string, unknown>;
  ratios: Record<string, unknown>;
  authenticated_ratios: Record<string, unknown>;
  nodes: number;
  senders: number;
  topology: string;
  seconds: number;
}): void {
  const rows: [string, string][] = [
    ['delivered_pps', 'lossless rate per receiver'],
    ['delivered_loss_ratio', 'loss at that rate'],
    ['cpu_us_per_msg', `machine CPU µs/msg @${CPU_RATE / 1000}k`],
    ['pipeline_cpu_us_per_msg', 'bench processes CPU µs/msg'],
    ['agent_cpu_us_per_msg', 'agent CPU µs/msg'],
    ['sender_cpu_us_per_msg', 'sender CPU µs/msg'],
    ['underlay_pkts_per_msg', 'underlay pkts/msg'],
    ['latency_p50_us', `latency p50 µs @${LATENCY_RATE / 1000}k`],
    ['latency_p99_us', 'latency p99 µs'],
    ['latency_loss_ratio', 'latency trial loss'],
    ['agent_rss_mb', 'agent peak RSS MB'],
  ];
  const fmt = (v: unknown) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v ?? '-'));
  console.log(
    `castnet (version 1, unauthenticated), castnet_authenticated (version 2) and kernel bridge+VXLAN flooding: fan-out 5, 100 B, ${out.topology}, ${out.senders} senders, ${out.seconds} s`,
  );
  console.log(
    `${'metric'.padEnd(34)}${'castnet'.padStart(12)}${'auth'.padStart(12)}${'kernel'.padStart(12)}${'c/k'.padStart(8)}${'auth/c'.padStart(8)}`,
  );
  for (const [key, label] of rows) {
    const limited = (s: Record<string, unknown>) => (key === 'delivered_pps' && s.sender_limited ? '>=' : '');
    console.log(
      label.padEnd(34) +
        (limited(out.castnet) + fmt(out.castnet[key])).padStart(12) +
        (limited(out.castnet_authenticated) + fmt(out.castnet_authenticated[key])).padStart(12) +
        (limited(out.kernel) + fmt(out.kernel[key])).padStart(12) +
        fmt(out.ratios[key] ?? '').padStart(8) +
        fmt(out.authenticated_ratios[key] ?? '').padStart(8),
    );
  }
  console.log(
    `underlay pkts/msg per node: castnet ${fmt(out.castnet.underlay_pkts_per_node)}, kernel ${fmt(out.kernel.underlay_pkts_per_node)}`,
  );
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
