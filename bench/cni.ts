// `make bench-cni`: ADD then DEL latency of castnet-cni (through a real agent) and of the reference
// bridge + host-local plugins, for the same pods in the same run. The two are interleaved pod by pod
// (castnet ADD, reference ADD, next pod...), so both see the same machine load; each plugin runs
// under the same `nsenter --net=<node netns>` wrapper, so both pay the same exec and setns costs; a
// pod's namespace is created before its ADD is timed. Writes bench/results/cni.json.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TestAgent } from '../test/harness/agent.js';
import { castnetCni, repoRoot } from '../test/harness/cni.js';
import { addNetns, delNetns, delNetnsWithPrefix, netnsPath, netnsTag } from '../test/harness/netns.js';
import { errorMessage } from '../pkg/base/errors.js';

const PODS = Number(process.env.BENCH_CNI_PODS ?? 100);
/** Pods ADDed and DELeted first and not counted: JIT warm-up, the bridge's creation. */
const WARMUP = 3;
const REFERENCE_DIR = process.env.CNI_REFERENCE_DIR ?? '/usr/lib/cni';
const tag = netnsTag('bench');

interface Latencies {
  add_p50_ms: number;
  add_p95_ms: number;
  del_p50_ms: number;
  del_p95_ms: number;
}

/** One CNI plugin under test: how to run it and its samples. */
interface Subject {
  name: 'castnet' | 'reference';
  /** Namespace the plugin runs in (the node). */
  nodeNs: string;
  plugin: string;
  stdin: string;
  adds: number[];
  dels: number[];
}

/** Nearest-rank percentile of `samples` (ms), rounded to 0.01 ms. */
function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return Math.round(sorted[rank - 1] * 100) / 100;
}

function summarize(s: Subject): Latencies {
  return {
    add_p50_ms: percentile(s.adds, 50),
    add_p95_ms: percentile(s.adds, 95),
    del_p50_ms: percentile(s.dels, 50),
    del_p95_ms: percentile(s.dels, 95),
  };
}

/** Runs one CNI invocation of `s` for pod `i`; resolves with its wall time in ms. */
function timedInvoke(s: Subject, command: 'ADD' | 'DEL', i: number): Promise<number> {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: `${s.name}-${i}`,
    CNI_NETNS: netnsPath(podNs(s, i)),
    CNI_IFNAME: 'eth0',
    CNI_PATH: REFERENCE_DIR,
  };
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('nsenter', [`--net=${netnsPath(s.nodeNs)}`, s.plugin], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (status === 0) resolve(ms);
      else reject(new Error(`${s.name} ${command} pod ${i}: exit ${status}: ${out}`));
    });
    child.stdin.end(s.stdin);
  });
}

const podNs = (s: Subject, i: number): string => `${tag}${s.name[0]}${i}`;

/** ADD for every pod, then DEL for every pod, one invocation at a time as a runtime does per pod. */
async function measure(subjects: Subject[]): Promise<void> {
  const total = WARMUP + PODS;
  try {
    for (let i = 0; i < total; i++) {
      for (const s of subjects) {
        await addNetns(podNs(s, i));
        const ms = await timedInvoke(s, 'ADD', i);
        if (i >= WARMUP) s.adds.push(ms);
      }
    }
    for (let i = 0; i < total; i++) {
      for (const s of subjects) {
        const ms = await timedInvoke(s, 'DEL', i);
        if (i >= WARMUP) s.dels.push(ms);
      }
    }
  } finally {
    for (let i = 0; i < total; i++) await Promise.all(subjects.map((s) => delNetns(podNs(s, i))));
  }
}

async function main(): Promise<void> {
  await delNetnsWithPrefix('cnbench');
  const dir = await mkdtemp(path.join(tmpdir(), `${tag}-`));
  const agent = await TestAgent.start({
    tag,
    networks: [
      { name: 'bench', id: 99, subnets: ['10.99.0.0/16'], mtu: 1500, multicast: true, broadcast: true },
    ],
  });
  const refNs = `${tag}r`;
  try {
    await addNetns(refNs);
    const castnet: Subject = {
      name: 'castnet',
      nodeNs: agent.nodeNs,
      plugin: castnetCni,
      stdin: JSON.stringify({
        cniVersion: '1.1.0',
        name: 'bench',
        type: 'castnet',
        agentSocket: agent.socket,
      }),
      adds: [],
      dels: [],
    };
    const reference: Subject = {
      name: 'reference',
      nodeNs: refNs,
      plugin: path.join(REFERENCE_DIR, 'bridge'),
      stdin: JSON.stringify({
        cniVersion: '1.0.0',
        name: 'benchref',
        type: 'bridge',
        bridge: 'cnbench0',
        isGateway: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: '10.98.0.0/16' }]],
          dataDir: path.join(dir, 'host-local'),
        },
      }),
      adds: [],
      dels: [],
    };
    await measure([castnet, reference]);
    const [c, r] = [summarize(castnet), summarize(reference)];
    const ratio = (k: keyof Latencies) => Math.round((c[k] / r[k]) * 100) / 100;
    const report = {
      pods: PODS,
      castnet: c,
      reference: r,
      ratio: {
        add_p50: ratio('add_p50_ms'),
        add_p95: ratio('add_p95_ms'),
        del_p50: ratio('del_p50_ms'),
        del_p95: ratio('del_p95_ms'),
      },
      warmupPods: WARMUP,
      method:
        'per pod: castnet ADD then reference ADD, then likewise DEL; wall time of each plugin process under ' +
        `nsenter --net; castnet = castnet-cni + agent (own IPAM), reference = bridge + host-local from ${REFERENCE_DIR}`,
    };
    const out = path.join(repoRoot, 'bench/results/cni.json');
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify(report, null, 2) + '\n');
    console.log(JSON.stringify(report, null, 2));
  } finally {
    // The agent's JSON-line log has its own per-request durationMs, to tell agent time from exec time.
    if (process.env.BENCH_CNI_AGENT_LOG) await writeFile(process.env.BENCH_CNI_AGENT_LOG, agent.logs);
    await agent.destroy();
    await delNetns(refNs);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench-cni: ${errorMessage(err)}`);
  process.exit(1);
});
