// make bench-isolation: what one pod flooding broadcast at full speed costs another tenant's multicast
// stream on the same node (issue 11, item 5). The real lab (pkg/lab: one `castnet agent` per node,
// pods wired by castnet-cni), 3 nodes:
//   tenant-a (the victim): a sender on node 0 streams 100-byte datagrams at a fixed rate to members
//     on nodes 0, 1 and 2 (each its own process, a plain Node.js UDP socket, as market data reads);
//   tenant-b: a pod on node 0 floods broadcast (raw frames from its own addresses, sendmmsg of 64, as
//     fast as the kernel takes them, from several processes) to its network's pods on nodes 1 and 2,
//     under the network's default rate limits;
//   tenant-c: the same flood on a network whose limits are set to the CRD's maximum (1,000,000/s):
//     what the flood costs without the policer, in the same run.
// Trials, alternating: alone, under tenant-b's flood, under tenant-c's flood. The victim's delivered
// rate is its members' distinct messages read per second of sending, averaged over the members.
// Writes bench/results/isolation.json; docs/benchmarks.md. Goal: ratio (under flood / alone) ≥ 0.9.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../pkg/base/async.js';
import type { StreamSummary } from '../pkg/lab/stream.js';
import { Lab } from '../pkg/lab/runner.js';
import { labFile } from '../pkg/lab/scenario.js';
import { LIMITS } from '../pkg/lookup/limits.js';
import { run } from '../pkg/sys/exec.js';
import {
  castnetLauncher,
  isAgent,
  namespacePids,
  netnsPath,
  ROOT,
  tearDownOnSignals,
  Traffic,
  type Cleanups,
} from './dataplane-systems.js';
import { processCpuUs } from './proc.js';

const GROUP = '239.1.1.3';
const PORT = 5003;
const VICTIM_PPS = Number(process.env.BENCH_VICTIM_PPS ?? 5000);
const TRIAL_SECONDS = Number(process.env.BENCH_TRIAL_SECONDS ?? 10);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);
/** Flooding processes in the hostile pod. */
const FLOODERS = Number(process.env.BENCH_FLOODERS ?? 2);
const NICE = Number(process.env.BENCH_NICE ?? -10);
/**
 * CPUs the hostile pod may use (a CFS quota on its processes, as a pod's CPU limit is): the lab's
 * three nodes share this machine's cores, so an unlimited flooder would take CPU from the other
 * "nodes" themselves, which separate machines do not share. 0: no limit.
 */
const FLOOD_CPU = Number(process.env.BENCH_FLOOD_CPU ?? 1);
const CGROUP_CPU = '/sys/fs/cgroup/cpu';
const IDLE_MS = 500;
const GOAL_RATIO = 0.9;

const MEMBERS = [
  { name: 'a-r0', node: 0 },
  { name: 'a-r1', node: 1 },
  { name: 'a-r2', node: 2 },
];
const FLOOD_NETWORKS = { policed: 'tenant-b', unpoliced: 'tenant-c' } as const;
type Mode = 'alone' | keyof typeof FLOOD_NETWORKS;

interface Trial {
  mode: Mode;
  sentPps: number;
  /** Members' distinct messages read per second of sending, averaged. */
  deliveredPps: number;
  worstLossRatio: number;
  duplicates: number;
  floodOfferedPps: number;
  /** Flood frames the hostile pod's agent policed (its endpoint's counter) per second. */
  floodPolicedPps: number;
  /** Flood frames the kernel dropped before the agent read them (its capture queue was full), per second. */
  floodKernelDroppedPps: number;
  /** Flood frames the flooder's network's pods on the other nodes received, per second. */
  floodDeliveredRemotePps: number;
  /** CPU of node 0's agent, % of one core. */
  agent0CpuPercent: number;
}

interface AgentStats {
  dataplane: { policed: Record<string, { broadcast?: number }>; remoteDeliveries: number };
  capture: { dropped: number };
}

/** Puts `pids` under a CPU limit of `cpus` (cgroup v1 or v2); registers its removal. */
function limitCpu(name: string, pids: number[], cpus: number, cleanups: Cleanups): string {
  const v2 = !existsSync(join(CGROUP_CPU, 'cpu.cfs_quota_us'));
  const dir = join(v2 ? '/sys/fs/cgroup' : CGROUP_CPU, `castnet-bench-${process.pid}-${name}`);
  mkdirSync(dir);
  cleanups.push(async () => {
    for (let i = 0; i < 50; i++) {
      try {
        return rmdirSync(dir);
      } catch {
        await sleep(100); // its processes are still exiting
      }
    }
  });
  const period = 100000;
  if (v2) writeFileSync(join(dir, 'cpu.max'), `${Math.round(cpus * period)} ${period}`);
  else {
    writeFileSync(join(dir, 'cpu.cfs_period_us'), String(period));
    writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(Math.round(cpus * period)));
  }
  for (const pid of pids) writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  return dir;
}

const cleanups: Cleanups = [];
const cleanup = tearDownOnSignals(cleanups);
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  const max = { packetsPerSecond: LIMITS.ratePpsMax, burst: LIMITS.ratePpsMax };
  const file = labFile.parse({
    nodes: 3,
    networks: [
      { name: 'tenant-a', id: 110, subnets: ['10.40.0.0/16'] },
      { name: 'tenant-b', id: 120, subnets: ['10.41.0.0/16'] },
      { name: 'tenant-c', id: 130, subnets: ['10.42.0.0/16'], rateLimits: { broadcast: max } },
    ],
    pods: [
      { name: 'a-src', node: 0, network: 'tenant-a' },
      ...MEMBERS.map((m) => ({ ...m, network: 'tenant-a' })),
      ...(['b', 'c'] as const).flatMap((t) => [
        { name: `${t}-flood`, node: 0, network: `tenant-${t}` },
        { name: `${t}-r1`, node: 1, network: `tenant-${t}` },
        { name: `${t}-r2`, node: 2, network: `tenant-${t}` },
      ]),
    ],
    scenarios: [{ name: 'bench', steps: [{ sleep: 0 }] }],
  });
  console.error('building the lab (3 nodes, 3 tenants)');
  const lab = new Lab(file, {
    castnetBin: castnetLauncher(),
    cniBin: join(ROOT, 'bin', 'castnet-cni'),
    captures: false,
    log: (l) => console.error(`  lab: ${l}`),
  });
  cleanups.push(() => lab.dispose());
  await lab.start();
  const agentPids: number[] = [];
  for (const n of lab.topology.nodes) {
    for (const pid of await namespacePids(n.ns)) if (isAgent(pid)) agentPids.push(pid);
  }
  const src = lab.podInfo('a-src');
  await run('ip', ['-n', src.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
  const sender = new Traffic(['send', netnsPath(src.ns), src.ip, GROUP, String(PORT)]);
  const members = MEMBERS.map((m) => {
    const p = lab.podInfo(m.name);
    return new Traffic(['member', GROUP, String(PORT), p.ip], p.ns);
  });
  const flooders = Object.fromEntries(
    Object.entries(FLOOD_NETWORKS).map(([mode, net]) => {
      const p = lab.podInfo(`${net.slice(-1)}-flood`);
      return [mode, Array.from({ length: FLOODERS }, () => new Traffic(['flood', p.mac, p.ip], p.ns))];
    }),
  ) as Record<keyof typeof FLOOD_NETWORKS, Traffic[]>;
  const all = [sender, ...members, ...Object.values(flooders).flat()];
  // Each hostile pod's flooders share one limit, as one pod's containers do.
  if (FLOOD_CPU > 0)
    for (const [mode, fs] of Object.entries(flooders))
      limitCpu(
        mode,
        fs.map((f) => f.pid),
        FLOOD_CPU,
        cleanups,
      );
  cleanups.push(() => all.forEach((t) => t.kill()));
  await Promise.all(members.map((m) => m.ask()));
  // Every process of the benchmark, the flooders included, at one priority: raised above the rest of
  // a shared machine, not above each other.
  if (NICE) for (const pid of [process.pid, ...agentPids, ...all.map((t) => t.pid)]) setPriority(pid, NICE);
  const deadline = Date.now() + 20000;
  while (lab.directory.memberships.filter((m) => m.group === GROUP).length < MEMBERS.length) {
    if (Date.now() > deadline)
      throw new Error(`the ${MEMBERS.length} joins of ${GROUP} did not reach the lookup`);
    await sleep(50);
  }

  const stats = async (node: number) => (await lab.agentStats(node)) as unknown as AgentStats;
  let runNumber = 0;
  const trial = async (mode: Mode): Promise<Trial> => {
    const count = Math.round(VICTIM_PPS * TRIAL_SECONDS);
    const id = ++runNumber;
    await Promise.all(members.map((m) => m.ask(`run ${id} ${count}`)));
    const floodNet = mode === 'alone' ? undefined : FLOOD_NETWORKS[mode];
    const floodEp = floodNet ? String(lab.podInfo(`${floodNet.slice(-1)}-flood`).endpointId) : '';
    const before = await Promise.all([0, 1, 2].map(stats));
    const cpuBefore = processCpuUs(agentPids[0]!);
    const t0 = performance.now();
    // The flood starts a moment before the stream and runs a moment past it.
    const flooding =
      mode === 'alone'
        ? []
        : flooders[mode].map((f) => f.ask(`${TRIAL_SECONDS + 1}`).then((l) => l.split(' ').map(Number)));
    if (mode !== 'alone') await sleep(300);
    const [, sent, , seconds] = (await sender.ask(`${VICTIM_PPS} ${count} ${id} 1`))
      .split(' ')
      .map(Number) as [number, number, number, number];
    const floods = await Promise.all(flooding);
    const wall = (performance.now() - t0) / 1000;
    let last = '';
    for (let idleSince = Date.now(); Date.now() - idleSince < IDLE_MS; await sleep(50)) {
      const counts = await Promise.all(members.map((m) => m.ask('count')));
      if (counts.every((c) => Number(c) >= sent)) break;
      if (counts.join() !== last) [last, idleSince] = [counts.join(), Date.now()];
    }
    const agent0Cpu = (processCpuUs(agentPids[0]!) - cpuBefore) / 1e6 / wall;
    const after = await Promise.all([0, 1, 2].map(stats));
    const summaries = await Promise.all(
      members.map(
        async (m) => JSON.parse(await m.ask(`summary ${sent}`)) as StreamSummary & { rcvbufErrors: number },
      ),
    );
    const floodSent = floods.reduce((n, f) => n + f[1]!, 0);
    const floodSeconds = Math.max(1e-9, ...floods.map((f) => f[3]!));
    const policed = (s: AgentStats) => s.dataplane.policed[floodEp]?.broadcast ?? 0;
    const remote = (i: number) =>
      after[i]!.dataplane.remoteDeliveries - before[i]!.dataplane.remoteDeliveries;
    const t: Trial = {
      mode,
      sentPps: Math.round(sent / seconds),
      deliveredPps: Math.round(summaries.reduce((n, s) => n + s.received, 0) / summaries.length / seconds),
      worstLossRatio: round(Math.max(...summaries.map((s) => s.lossRatio)), 6),
      duplicates: summaries.reduce((n, s) => n + s.duplicates, 0),
      floodOfferedPps: Math.round(floodSent / floodSeconds),
      floodPolicedPps: Math.round((policed(after[0]!) - policed(before[0]!)) / floodSeconds),
      floodKernelDroppedPps:
        mode === 'alone'
          ? 0
          : Math.round((after[0]!.capture.dropped - before[0]!.capture.dropped) / floodSeconds),
      // Remote deliveries on nodes 1 and 2 beyond the victim's own member there.
      floodDeliveredRemotePps:
        mode === 'alone'
          ? 0
          : Math.max(
              0,
              Math.round(
                (remote(1) + remote(2) - (summaries[1]!.received + summaries[2]!.received)) / floodSeconds,
              ),
            ),
      agent0CpuPercent: Math.round(agent0Cpu * 100),
    };
    console.error(
      `  ${mode.padEnd(9)} victim sent ${t.sentPps}/s delivered ${t.deliveredPps}/s worst loss ` +
        `${(t.worstLossRatio * 100).toFixed(3)}%  flood offered ${t.floodOfferedPps}/s policed ${t.floodPolicedPps}/s ` +
        `kernel-dropped ${t.floodKernelDroppedPps}/s delivered remote ${t.floodDeliveredRemotePps}/s  agent0 ${t.agent0CpuPercent}%` +
        `  loss per member ${summaries.map((s) => `${(s.lossRatio * 100).toFixed(2)}% (rcvbuf ${s.rcvbufErrors})`).join(' ')}`,
    );
    return t;
  };

  // Warm-up (not counted): JIT compiled, every path used once.
  await trial('alone');
  const trials: Trial[] = [];
  for (let k = 0; k < REPEATS; k++)
    for (const mode of ['alone', 'policed', 'unpoliced'] as const) trials.push(await trial(mode));
  const of = (mode: Mode) => trials.filter((t) => t.mode === mode);
  const med = (mode: Mode, k: keyof Trial) => median(of(mode).map((t) => t[k] as number));
  const alone = med('alone', 'deliveredPps');
  const underFlood = med('policed', 'deliveredPps');
  const unpoliced = med('unpoliced', 'deliveredPps');
  const out = {
    bench: 'isolation',
    date: new Date().toISOString(),
    victim_pps_alone: alone,
    victim_pps_under_flood: underFlood,
    ratio: round(underFlood / alone),
    goal: `ratio ≥ ${GOAL_RATIO}: the flood costs the victim less than 10 % of its delivered rate`,
    goal_met: underFlood / alone >= GOAL_RATIO,
    victim_offered_pps: VICTIM_PPS,
    victim_worst_loss_ratio: {
      alone: med('alone', 'worstLossRatio'),
      under_flood: med('policed', 'worstLossRatio'),
    },
    flood_offered_pps: med('policed', 'floodOfferedPps'),
    flood_policed_pps: med('policed', 'floodPolicedPps'),
    flood_kernel_dropped_pps: med('policed', 'floodKernelDroppedPps'),
    flood_delivered_remote_pps: med('policed', 'floodDeliveredRemotePps'),
    flood_rate_limit: { packetsPerSecond: LIMITS.broadcastPpsDefault, burst: LIMITS.broadcastBurstDefault },
    agent0_cpu_percent: {
      alone: med('alone', 'agent0CpuPercent'),
      under_flood: med('policed', 'agent0CpuPercent'),
    },
    without_policing: {
      victim_pps_under_flood: unpoliced,
      ratio: round(unpoliced / alone),
      victim_worst_loss_ratio: med('unpoliced', 'worstLossRatio'),
      flood_offered_pps: med('unpoliced', 'floodOfferedPps'),
      flood_delivered_remote_pps: med('unpoliced', 'floodDeliveredRemotePps'),
      agent0_cpu_percent: med('unpoliced', 'agent0CpuPercent'),
    },
    nodes: 3,
    members: MEMBERS.length,
    flooders: FLOODERS,
    flood_pod_cpu_limit: FLOOD_CPU || null,
    payload_bytes: 100,
    trial_seconds: TRIAL_SECONDS,
    repeats: REPEATS,
    nice: NICE,
    load_average_at_start: loadAtStart,
    load_average_at_end: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
    notes: [
      'victim: tenant-a, one sender on node 0 at victim_offered_pps (paced per ms, one datagram per send call), members on nodes 0, 1 and 2, each a Node.js UDP socket at default buffer sizes in its own process',
      'victim_pps_*: distinct messages each member read per second of sending, averaged over the members; median over the trials; ratio = under_flood / alone',
      "flood: tenant-b, one pod on node 0 (the victim sender's node), `flooders` processes each writing broadcast frames from the pod's own MAC and IP through an AF_PACKET socket, sendmmsg of 64, as fast as the kernel takes them; its network has pods on nodes 1 and 2 and the default rate limits (flood_rate_limit)",
      "flood_policed_pps: the flooder's endpoint's policed-broadcast counter in node 0's agent; flood_kernel_dropped_pps: frames node 0's capture queues dropped before the agent read them (PACKET_STATISTICS); flood_delivered_remote_pps: frames the agents of nodes 1 and 2 delivered beyond the victim's own",
      'without_policing: the same flood on tenant-c, whose broadcast limit is the CRD maximum (1,000,000/s, burst 1,000,000): what the flood costs when nothing polices it, in the same run',
      "flood_pod_cpu_limit: the flooding pod's processes share a CFS quota of this many CPUs, as a pod's CPU limit would (null: none). The lab's 3 nodes are namespaces on one machine and share its cores: without a limit the flood's own CPU, spent in its processes' system calls and the kernel's veth and bridge work, comes out of the other nodes' CPU too, which separate machines do not share",
      'nice: every process of the benchmark (agents, victim sender and members, flooders) runs at this priority, so other work on a shared machine does not decide the figures; the flooders get the same share as the agents',
      'trials alternate alone, under the policed flood, under the unpoliced flood; figures are medians over `repeats` (of two, the higher)',
    ],
    trials,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'isolation.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(
    `victim ${VICTIM_PPS}/s: alone ${alone}/s, under a policed flood of ${out.flood_offered_pps}/s ${underFlood}/s ` +
      `(ratio ${out.ratio}, goal ${out.goal_met ? 'met' : 'MISSED'}); unpoliced ${unpoliced}/s (ratio ${out.without_policing.ratio})`,
  );
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
