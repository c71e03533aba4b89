// The two systems bench/dataplane.ts and bench/marketdata.ts compare, built the same way for both
// benchmarks: (a) castnet, the real lab (pkg/lab: one `castnet agent` per node, pods wired by
// castnet-cni); (b) the kernel, per node a Linux bridge (snooping off) with the pods' veths and a
// VXLAN device whose all-zero FDB entries flood every other node, on an identical underlay
// (pkg/lab/topology). Also the traffic children (bench/dataplane-traffic.ts) both drive.
import { errorMessage } from '../pkg/base/errors.js';
import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Lab } from '../pkg/lab/runner.js';
import { labFile } from '../pkg/lab/scenario.js';
import { buildTopology, destroyTopology, newLabId, type LabTopology } from '../pkg/lab/topology.js';
import { run } from '../pkg/sys/exec.js';

/** The repository (the benchmarks run from .cache/<bench>/bench/). */
export const ROOT = join(import.meta.dirname, '..', '..', '..');
const TRAFFIC_JS = join(import.meta.dirname, 'dataplane-traffic.js');

export const netnsPath = (ns: string) => `/run/netns/${ns}`;

/** A pod of a benchmark: its name and node. */
export interface PodSpec {
  name: string;
  node: number;
}

/** Fan-out 5 on 3 nodes: 1 receiver on the sender's node, 2 on each of two remote nodes. */
export const SENDER: PodSpec = { name: 'src', node: 0 };
export const RECEIVERS: PodSpec[] = [
  { name: 'r0', node: 0 },
  { name: 'r1a', node: 1 },
  { name: 'r1b', node: 1 },
  { name: 'r2a', node: 2 },
  { name: 'r2b', node: 2 },
];

/** The nodes and pods, the same in both systems. */
export interface Layout {
  nodes: number;
  sender: PodSpec;
  receivers: PodSpec[];
}

/** What a benchmark tears down on exit, last first (registered before each part starts). */
export type Cleanups = (() => Promise<void> | void)[];

/**
 * Returns the function that runs `cleanups` (last registered first, each failure logged), and runs
 * it on Ctrl-C or SIGTERM too, so no namespace or process outlives the benchmark.
 */
export function tearDownOnSignals(cleanups: Cleanups): () => Promise<void> {
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        console.error(`cleanup: ${errorMessage(err)}`);
      }
    }
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`${sig}: cleaning up`);
      void cleanup().then(() => process.exit(130));
    });
  }
  return cleanup;
}

export interface Pod {
  name: string;
  ns: string;
  ip: string;
}

export interface System {
  name: 'castnet' | 'castnet_authenticated' | 'kernel';
  topo: LabTopology;
  sender: Pod;
  receivers: Pod[];
  agentPids: number[];
}

/** A traffic child (bench/dataplane-traffic.ts): one command line in, one answer line out. */
export class Traffic {
  private readonly waiting: ((line: string) => void)[] = [];
  /** Lines printed before anyone asked (e.g. "ready"). */
  private readonly unread: string[] = [];
  private readonly child: ChildProcess;
  /** `netns`: run the child inside that namespace, as an application of the pod would be. */
  constructor(args: string[], netns?: string) {
    const argv = [process.execPath, TRAFFIC_JS, ...args];
    const [cmd, ...rest] = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
    this.child = spawn(cmd!, rest, { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(l);
      else this.unread.push(l);
    });
  }
  get pid(): number {
    return this.child.pid!;
  }
  /** The next line the child prints (its answer to `command`, when given). */
  ask(command?: string): Promise<string> {
    if (command === undefined && this.unread.length) return Promise.resolve(this.unread.shift()!);
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`traffic ${this.pid} exited ${code}`));
      this.child.once('exit', onExit);
      this.waiting.push((line) => {
        this.child.off('exit', onExit);
        if (line.startsWith('error')) reject(new Error(line));
        else resolve(line);
      });
      if (command !== undefined) this.child.stdin!.write(command + '\n');
    });
  }
  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** A `castnet agent` process (the agents run short-lived helpers too, which may be gone by now). */
export function isAgent(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('agent') && argv.some((a) => a.endsWith('main.js'));
  } catch {
    return false;
  }
}

export async function namespacePids(ns: string): Promise<number[]> {
  const { stdout } = await run('ip', ['netns', 'pids', ns]);
  return stdout.split('\n').filter(Boolean).map(Number);
}

/**
 * bin/castnet, or a launcher that runs the agents with extra Node.js flags (which NODE_OPTIONS may not
 * carry, e.g. --cpu-prof): BENCH_AGENT_NODE_ARGS="--max-semi-space-size=2", and BENCH_AGENT_PROFILE=DIR
 * (each agent writes a CPU profile to DIR when the lab stops it).
 */
export function castnetLauncher(): string {
  const profileDir = process.env.BENCH_AGENT_PROFILE;
  const flags = [
    ...(process.env.BENCH_AGENT_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
  ];
  if (!flags.length) return join(ROOT, 'bin', 'castnet');
  const dir = profileDir ?? join(ROOT, '.cache', 'bench-dataplane');
  mkdirSync(dir, { recursive: true });
  const launcher = join(dir, 'castnet-agent-launcher.sh');
  const main = join(ROOT, 'dist', 'cmd', 'castnet', 'main.js');
  writeFileSync(launcher, `#!/bin/sh\nexec node ${flags.join(' ')} ${main} "$@"\n`, { mode: 0o755 });
  return launcher;
}

/**
 * castnet: the real lab, without captures (a capture per packet would dominate CPU figures).
 * `castnet` runs the agents in wire format version 1 without a key (unauthenticated);
 * `castnet_authenticated` with the default, version 2 (per-pair keys, docs/wire-format.md).
 */
export async function startCastnet(
  layout: Layout,
  cleanups: Cleanups,
  log: (l: string) => void,
  name: 'castnet' | 'castnet_authenticated' = 'castnet',
): Promise<System & { lab: Lab }> {
  const { nodes, sender, receivers } = layout;
  const file = labFile.parse({
    nodes,
    networks: [{ name: 'bench', id: 100, subnets: ['10.30.0.0/16'] }],
    pods: [sender, ...receivers].map((p) => ({ ...p, network: 'bench' })),
    scenarios: [{ name: 'bench', steps: [{ sleep: 0 }] }],
  });
  const lab = new Lab(file, {
    castnetBin: castnetLauncher(),
    cniBin: join(ROOT, 'bin', 'castnet-cni'),
    captures: false,
    agentArgs: name === 'castnet' ? ['--wire-version', '1'] : [],
    log,
  });
  cleanups.push(() => lab.dispose());
  await lab.start();
  const pod = (name: string): Pod => ({ name, ns: lab.podInfo(name).ns, ip: lab.podInfo(name).ip });
  const topo = lab.topology;
  const agentPids: number[] = [];
  for (const n of topo.nodes) {
    for (const pid of await namespacePids(n.ns)) {
      if (isAgent(pid)) agentPids.push(pid);
    }
  }
  if (agentPids.length !== nodes) throw new Error(`found ${agentPids.length} castnet agents, want ${nodes}`);
  return {
    name,
    topo,
    sender: pod(sender.name),
    receivers: receivers.map((r) => pod(r.name)),
    agentPids,
    lab,
  };
}

/** The kernel's bridge + VXLAN flooding, on an underlay like the lab's; registers its teardown. */
export async function startKernel(layout: Layout, cleanups: Cleanups): Promise<System> {
  const { nodes, sender, receivers } = layout;
  const topo = await buildTopology(newLabId(), nodes, 1500);
  const ipn = (ns: string, ...args: string[]) => run('ip', ['-n', ns, ...args]);
  try {
    for (const n of topo.nodes) {
      await ipn(n.ns, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0');
      await ipn(
        n.ns,
        'link',
        'add',
        'vxlan0',
        'type',
        'vxlan',
        'id',
        '100',
        'local',
        n.address,
        'dev',
        'ul0',
        'dstport',
        '4789',
      );
      await ipn(n.ns, 'link', 'set', 'vxlan0', 'master', 'br0', 'up');
      await ipn(n.ns, 'link', 'set', 'br0', 'up');
      for (const peer of topo.nodes.filter((p) => p !== n)) {
        await run('bridge', [
          '-n',
          n.ns,
          'fdb',
          'append',
          '00:00:00:00:00:00',
          'dev',
          'vxlan0',
          'dst',
          peer.address,
        ]);
      }
    }
    const pods = [sender, ...receivers].map((p, i): Pod => {
      return { name: p.name, ns: `${topo.id}-p-${p.name}`, ip: `10.30.0.${10 + i}` };
    });
    for (const [i, p] of pods.entries()) {
      const node = topo.nodes[[sender, ...receivers][i]!.node]!;
      await run('ip', ['netns', 'add', p.ns]);
      await ipn(p.ns, 'link', 'set', 'lo', 'up');
      await ipn(node.ns, 'link', 'add', `h-${p.name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.ns);
      await ipn(node.ns, 'link', 'set', `h-${p.name}`, 'master', 'br0', 'up');
      await ipn(p.ns, 'addr', 'add', `${p.ip}/16`, 'dev', 'eth0');
      await ipn(p.ns, 'link', 'set', 'eth0', 'mtu', '1450', 'up');
    }
    cleanups.push(() => destroyTopology(topo));
    return { name: 'kernel', topo, sender: pods[0]!, receivers: pods.slice(1), agentPids: [] };
  } catch (err) {
    await destroyTopology(topo);
    throw err;
  }
}
