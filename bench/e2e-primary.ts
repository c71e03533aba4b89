// make bench-e2e-primary: castnet as the cluster network (issue 9) against the reference, pod to pod
// across nodes on the real cluster (scripts/cluster/cluster.sh), in the same run:
//   reference  the cluster's default pod network: the bridge plugin + host-local with each node's
//              pod CIDR and a static route per other node (CASTNET_CLUSTER_CNI=bridge)
//   castnet    castnet in primary mode as the only CNI (CASTNET_CLUSTER_CNI=castnet, helm)
// Each round brings the cluster up with one network, measures, and brings it down; the networks
// alternate (BENCH_ROUNDS rounds each). In each, a client pod on the first node and a server pod on
// the second (nodeName) measure, BENCH_TRIALS times:
//   TCP throughput   iperf2, one stream for BENCH_SECONDS (`iperf -c <server> -t 10 -P 1`)
//   UDP latency      sockperf ping-pong: sequential 64-byte UDP requests, each answered by
//                    `sockperf server`, for BENCH_SECONDS; p50 and p99 of the round-trip time (µs)
// The client runs on CPU 0 and the server on CPU 1 (taskset; BENCH_PIN=0 leaves them to the
// scheduler): on this 2-core machine both "nodes" share the cores, and a request/response pair on one
// core skips the cross-core wakeup that separate machines always pay, which made the round trip
// bimodal (about 35 µs on one core, 80-95 µs across) and the median a matter of where the scheduler
// happened to put the two processes. Pinned, every trial measures the across-cores case.
// The ratios are castnet's median over the reference's median. Goal: throughput ≥ 0.9×, p50
// latency ≤ 1.1×. Merges {"bench": ...} into bench/results/e2e-primary.json, keeping the e2e tests'
// results there. Needs the cluster down at the start (`make cluster-down`): it starts and stops it.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { realCluster, imageRef, type RealCluster } from '../test/harness/cluster.js';
import { repoRoot } from '../test/harness/cni.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const MSG_BYTES = 64;
const PIN = process.env.BENCH_PIN !== '0';
const CLIENT_CPU = PIN ? 'taskset -c 0 ' : '';
const SERVER_CPU = PIN ? 'taskset -c 1 ' : '';
const IPERF_PORT = 5001;
const SOCKPERF_PORT = 11111;
const NS = 'bench-e2e-primary';
const GOAL = { tcp_throughput_ratio_min: 0.9, udp_rr_latency_ratio_max: 1.1 };

type System = 'reference' | 'castnet';
const CNI: Record<System, string> = { reference: 'bridge', castnet: 'castnet' };

interface Trial {
  round: number;
  trial: number;
  tcp_mbit_s: number;
  udp_rtt_us: { p50: number; p99: number; avg: number; samples: number };
  load_average: number[];
}

const clusterScript = path.join(repoRoot, 'scripts/cluster/cluster.sh');
const cacheDir = process.env.CASTNET_CACHE ?? path.join(repoRoot, '.cache');

/** Runs cluster.sh with `cni` as its pod network, its output on ours. */
function cluster(args: string[], cni: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(clusterScript, args, {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, CASTNET_CLUSTER_CNI: cni },
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`cluster.sh ${args.join(' ')} exited ${code}`)),
    );
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const load = (): number[] => loadavg().map(r1);

function pod(name: string, node: string, image: string, script: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [
        { name: 'main', image, imagePullPolicy: 'IfNotPresent', command: ['/bin/sh', '-c', script] },
      ],
    },
  };
}

const exec = (c: RealCluster, name: string, script: string): Promise<string> =>
  c.kubectl(['-n', NS, 'exec', name, '--', '/bin/sh', '-c', script], { timeoutMs: (SECONDS + 60) * 1000 });

/** iperf2's CSV report (-y C): the last line's last field is the whole run's bits per second. */
function parseIperfCsv(out: string): number {
  const line = out.trim().split('\n').filter(Boolean).pop() ?? '';
  const bps = Number(line.split(',').pop());
  if (!Number.isFinite(bps) || bps <= 0) throw new Error(`iperf printed no throughput: ${out}`);
  return bps;
}

/** sockperf ping-pong --full-rtt: the round trip's percentiles and average, in µs. */
function parseSockperf(out: string): Trial['udp_rtt_us'] {
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (re: RegExp): number => {
    const m = re.exec(text);
    if (!m) throw new Error(`sockperf: no ${re.source} in: ${text}`);
    return Number(m[1]);
  };
  return {
    p50: num(/percentile 50\.000 =\s*([\d.]+)/),
    p99: num(/percentile 99\.000 =\s*([\d.]+)/),
    avg: num(/avg-rtt=([\d.]+)/),
    samples: num(/Total (\d+) observations/),
  };
}

async function waitReady(c: RealCluster, name: string): Promise<string> {
  await c.kubectl(['-n', NS, 'wait', '--for=condition=Ready', `pod/${name}`, '--timeout=180s'], {
    timeoutMs: 200_000,
  });
  return c.kubectl(['-n', NS, 'get', 'pod', name, '-o', 'jsonpath={.status.podIP}']);
}

async function round(system: System, n: number): Promise<{ trials: Trial[]; mtu: number }> {
  await cluster(['up'], CNI[system]);
  try {
    const c = await realCluster();
    if (c.nodes.length < 2) throw new Error('needs two nodes');
    const image = await imageRef('workload');
    await c.kubectl(['create', 'namespace', NS]);
    await c.kubectl(['apply', '-f', '-'], {
      input: [
        pod(
          'server',
          c.nodes[1]!,
          image,
          `${SERVER_CPU}iperf -s -p ${IPERF_PORT} & ${SERVER_CPU}sockperf server -i 0.0.0.0 -p ${SOCKPERF_PORT} & wait`,
        ),
        pod('client', c.nodes[0]!, image, 'exec sleep 1000000'),
      ]
        .map((o) => JSON.stringify(o))
        .join('\n'),
    });
    const server = await waitReady(c, 'server');
    await waitReady(c, 'client');
    const mtu = Number(await exec(c, 'client', 'cat /sys/class/net/eth0/mtu'));
    // Warm-up: the path's neighbours, conntrack and the server's listeners.
    await exec(c, 'client', `iperf -c ${server} -p ${IPERF_PORT} -t 1 >/dev/null`);
    const trials: Trial[] = [];
    for (let t = 1; t <= TRIALS; t++) {
      const tcp = await exec(
        c,
        'client',
        `${CLIENT_CPU}iperf -c ${server} -p ${IPERF_PORT} -t ${SECONDS} -P 1 -y C`,
      );
      const udp = await exec(
        c,
        'client',
        `${CLIENT_CPU}sockperf ping-pong -i ${server} -p ${SOCKPERF_PORT} -t ${SECONDS} -m ${MSG_BYTES} --full-rtt 2>&1`,
      );
      const trial: Trial = {
        round: n,
        trial: t,
        tcp_mbit_s: r1(parseIperfCsv(tcp) / 1e6),
        udp_rtt_us: parseSockperf(udp),
        load_average: load(),
      };
      trials.push(trial);
      console.log(`${system} round ${n} trial ${t}: ${JSON.stringify(trial)}`);
    }
    return { trials, mtu };
  } finally {
    await cluster(['down'], CNI[system]);
  }
}

function summary(trials: Trial[], mtu: number) {
  return {
    pod_mtu: mtu,
    tcp_mbit_s_median: r1(median(trials.map((t) => t.tcp_mbit_s))),
    udp_rtt_p50_us_median: r1(median(trials.map((t) => t.udp_rtt_us.p50))),
    udp_rtt_p99_us_median: r1(median(trials.map((t) => t.udp_rtt_us.p99))),
    trials,
  };
}

async function main(): Promise<void> {
  if (existsSync(path.join(cacheDir, 'cluster'))) {
    throw new Error(
      'a cluster (or what is left of one) is up: `make cluster-down` first; this bench starts it',
    );
  }
  const loadStart = load();
  const trials: Record<System, Trial[]> = { reference: [], castnet: [] };
  const mtu: Record<System, number> = { reference: 0, castnet: 0 };
  for (let n = 1; n <= ROUNDS; n++)
    for (const system of ['reference', 'castnet'] as const) {
      const r = await round(system, n);
      trials[system].push(...r.trials);
      mtu[system] = r.mtu;
    }
  const reference = summary(trials.reference, mtu.reference);
  const castnet = summary(trials.castnet, mtu.castnet);
  const tcp = r3(castnet.tcp_mbit_s_median / reference.tcp_mbit_s_median);
  const udp = r3(castnet.udp_rtt_p50_us_median / reference.udp_rtt_p50_us_median);
  const bench = {
    date: new Date().toISOString(),
    tcp_throughput_ratio: tcp,
    udp_rr_latency_ratio: udp,
    udp_rr_latency_p99_ratio: r3(castnet.udp_rtt_p99_us_median / reference.udp_rtt_p99_us_median),
    goal: `tcp_throughput_ratio >= ${GOAL.tcp_throughput_ratio_min} and udp_rr_latency_ratio (p50) <= ${GOAL.udp_rr_latency_ratio_max}`,
    goal_met: tcp >= GOAL.tcp_throughput_ratio_min && udp <= GOAL.udp_rr_latency_ratio_max,
    method: {
      reference: 'bridge + host-local, a static route per other node (cluster.sh CASTNET_CLUSTER_CNI=bridge)',
      castnet: 'castnet primary mode, the only CNI (helm --set mode=primary)',
      placement: 'client pod on the first node, server pod on the second',
      cpus: PIN ? 'client on CPU 0, server on CPU 1 (taskset)' : 'as the scheduler placed them',
      tcp: `iperf2, 1 stream, ${SECONDS} s`,
      udp: `sockperf ping-pong, sequential ${MSG_BYTES}-byte UDP requests for ${SECONDS} s, round-trip time`,
      rounds: ROUNDS,
      trials_per_round: TRIALS,
      order: 'alternating per round: reference, castnet; a fresh cluster each',
    },
    load_average_at_start: loadStart,
    load_average_at_end: load(),
    reference,
    castnet,
  };
  const file = path.join(repoRoot, 'bench/results/e2e-primary.json');
  const before = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(file, JSON.stringify({ ...before, bench }, null, 2) + '\n');
  console.log(
    `tcp: castnet ${castnet.tcp_mbit_s_median} Mbit/s, reference ${reference.tcp_mbit_s_median} Mbit/s, ratio ${tcp}; ` +
      `udp rr p50: castnet ${castnet.udp_rtt_p50_us_median} µs, reference ${reference.udp_rtt_p50_us_median} µs, ratio ${udp}; goal met: ${bench.goal_met}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
