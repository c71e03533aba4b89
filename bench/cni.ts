// `make bench-cni`: ADD then DEL latency of castnet-cni (through a real agent) and of the reference
// bridge + host-local plugins, for the same number of pods in the same run. Each plugin runs under
// the same `nsenter --net=<node netns>` wrapper, so both pay the same exec and setns costs; a pod's
// namespace is created before its ADD is timed. Writes bench/results/cni.json.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TestAgent } from '../test/harness/agent';
import { castnetCni, repoRoot } from '../test/harness/cni';
import { addNetns, delNetns, delNetnsWithPrefix, netnsPath, netnsTag } from '../test/harness/netns';

const PODS = Number(process.env.BENCH_CNI_PODS ?? 50);
const REFERENCE_DIR = process.env.CNI_REFERENCE_DIR ?? '/usr/lib/cni';
const tag = netnsTag('bench');

interface Latencies {
  add_p50_ms: number;
  add_p95_ms: number;
  del_p50_ms: number;
  del_p95_ms: number;
}

/** Nearest-rank percentile of `samples` (ms), rounded to 0.01 ms. */
function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return Math.round(sorted[rank - 1] * 100) / 100;
}

/** Runs one plugin invocation in the node namespace; resolves with its wall time in ms. */
function timedInvoke(
  nodeNs: string,
  plugin: string,
  env: Record<string, string>,
  stdin: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('nsenter', [`--net=${netnsPath(nodeNs)}`, plugin], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (status === 0) resolve(ms);
      else
        reject(
          new Error(
            `${path.basename(plugin)} ${env.CNI_COMMAND} ${env.CNI_CONTAINERID}: exit ${status}: ${out}`,
          ),
        );
    });
    child.stdin.end(stdin);
  });
}

/** ADD for every pod, then DEL for every pod, one at a time as a runtime does per pod. */
async function measure(
  name: string,
  nodeNs: string,
  plugin: string,
  conf: object,
  cniPath: string,
): Promise<Latencies> {
  const pods = Array.from({ length: PODS }, (_, i) => ({ id: `${name}${i}`, ns: `${tag}${name[0]}${i}` }));
  const stdin = JSON.stringify(conf);
  const env = (cmd: string, pod: { id: string; ns: string }) => ({
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: pod.id,
    CNI_NETNS: netnsPath(pod.ns),
    CNI_IFNAME: 'eth0',
    CNI_PATH: cniPath,
  });
  const adds: number[] = [];
  const dels: number[] = [];
  try {
    for (const pod of pods) {
      await addNetns(pod.ns);
      adds.push(await timedInvoke(nodeNs, plugin, env('ADD', pod), stdin));
    }
    for (const pod of pods) dels.push(await timedInvoke(nodeNs, plugin, env('DEL', pod), stdin));
  } finally {
    await Promise.all(pods.map((p) => delNetns(p.ns)));
  }
  return {
    add_p50_ms: percentile(adds, 50),
    add_p95_ms: percentile(adds, 95),
    del_p50_ms: percentile(dels, 50),
    del_p95_ms: percentile(dels, 95),
  };
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
    const reference = await measure(
      'reference',
      refNs,
      path.join(REFERENCE_DIR, 'bridge'),
      {
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
      },
      REFERENCE_DIR,
    );
    console.error(`reference: ${JSON.stringify(reference)}`);
    const castnet = await measure(
      'castnet',
      agent.nodeNs,
      castnetCni,
      {
        cniVersion: '1.1.0',
        name: 'bench',
        type: 'castnet',
        agentSocket: agent.socket,
      },
      REFERENCE_DIR,
    );
    const ratio = (k: keyof Latencies) => Math.round((castnet[k] / reference[k]) * 100) / 100;
    const report = {
      pods: PODS,
      castnet,
      reference,
      ratio: {
        add_p50: ratio('add_p50_ms'),
        add_p95: ratio('add_p95_ms'),
        del_p50: ratio('del_p50_ms'),
        del_p95: ratio('del_p95_ms'),
      },
      method:
        'sequential ADD of every pod then DEL of every pod; wall time of each plugin process under nsenter --net; ' +
        'castnet = castnet-cni + agent (own IPAM), reference = bridge + host-local from ' +
        REFERENCE_DIR,
    };
    const out = path.join(repoRoot, 'bench/results/cni.json');
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify(report, null, 2) + '\n');
    console.log(JSON.stringify(report, null, 2));
  } finally {
    await agent.destroy();
    await delNetns(refNs);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench-cni: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
