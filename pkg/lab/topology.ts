// The lab's nodes: one network namespace per node, each with an underlay interface on a bridge in
// an underlay namespace. Everything is named after the lab's ID so concurrent labs never collide,
// and leftovers of a lab whose owner died are found and removed by the next one.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Disposable } from '../base/lifecycle.js';
import { run, runIn } from '../sys/exec.js';

export const LAB_PREFIX = 'castnet-lab-';
export const LAB_RUN_DIR = '/run/castnet-lab';
/** 198.18.0.0/15 is reserved for benchmarking (RFC 2544): it never leaves the lab's namespaces. */
export const UNDERLAY_PREFIX = '198.18.0.';
export const UNDERLAY_PORT = 4790;

export interface LabNode {
  index: number;
  name: string;
  ns: string;
  address: string;
}

export interface LabTopology {
  id: string;
  dir: string;
  underlayNs: string;
  nodes: LabNode[];
}

export function nodeAddress(index: number): string {
  return `${UNDERLAY_PREFIX}${10 + index}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function listNetns(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

/** Removes the namespaces and run directory of every lab whose owning process is gone. */
export async function removeLeftoverLabs(): Promise<string[]> {
  const removed: string[] = [];
  // Namespaces first, owners second: a lab writes its owner.pid before its first namespace, so every
  // namespace listed here has its owner readable below. The other order took a lab starting in
  // another process meanwhile (namespaces, no owner yet when read) for a leftover, and removed it.
  const nsByLab = new Map<string, string[]>();
  for (const ns of await listNetns()) {
    if (!ns.startsWith(LAB_PREFIX)) continue;
    const id = ns.slice(0, ns.indexOf('-', LAB_PREFIX.length));
    nsByLab.set(id, [...(nsByLab.get(id) ?? []), ns]);
  }
  const owners = new Map<string, number>();
  if (existsSync(LAB_RUN_DIR)) {
    for (const id of readdirSync(LAB_RUN_DIR)) {
      const pidFile = join(LAB_RUN_DIR, id, 'owner.pid');
      owners.set(id, existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0);
    }
  }
  for (const id of new Set([...owners.keys(), ...nsByLab.keys()])) {
    const owner = owners.get(id) ?? 0;
    if (owner && pidAlive(owner)) continue;
    await destroyLab(id, nsByLab.get(id) ?? []);
    removed.push(id);
  }
  return removed;
}

async function destroyLab(id: string, namespaces: string[]): Promise<void> {
  const dir = join(LAB_RUN_DIR, id);
  // Processes still inside the namespaces (agents, tcpdump, socat) would keep them alive.
  for (const ns of namespaces) {
    const { stdout } = await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }));
    for (const pid of stdout.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  for (const ns of namespaces) await run('ip', ['netns', 'delete', ns]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}

export function newLabId(): string {
  return `${LAB_PREFIX}${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
}

export async function buildTopology(
  id: string,
  nodeCount: number,
  underlayMtu: number,
): Promise<LabTopology> {
  const dir = join(LAB_RUN_DIR, id);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  const underlayNs = `${id}-ul`;
  await run('ip', ['netns', 'add', underlayNs]);
  await runIn(underlayNs, 'ip', ['link', 'add', 'ul', 'type', 'bridge']);
  await runIn(underlayNs, 'ip', ['link', 'set', 'ul', 'mtu', String(underlayMtu), 'up']);
  const nodes: LabNode[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const ns = `${id}-n${i}`;
    const address = nodeAddress(i);
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await run('ip', [
      '-n',
      ns,
      'link',
      'add',
      'ul0',
      'mtu',
      String(underlayMtu),
      'type',
      'veth',
      'peer',
      'name',
      `n${i}`,
      'netns',
      underlayNs,
    ]);
    await run('ip', [
      '-n',
      underlayNs,
      'link',
      'set',
      `n${i}`,
      'mtu',
      String(underlayMtu),
      'master',
      'ul',
      'up',
    ]);
    await run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'ul0']);
    await run('ip', ['-n', ns, 'link', 'set', 'ul0', 'up']);
    nodes.push({ index: i, name: `node-${i}`, ns, address });
  }
  return { id, dir, underlayNs, nodes };
}

export async function destroyTopology(topo: Pick<LabTopology, 'id'>): Promise<void> {
  const namespaces = (await listNetns()).filter((ns) => ns.startsWith(`${topo.id}-`));
  await destroyLab(topo.id, namespaces);
}

/**
 * The lab's namespaces as one resource: start() builds the nodes and the underlay, podNamespace()
 * adds a pod's, and dispose() removes every namespace named after the lab (what a failed start
 * built too) and its run directory.
 */
export class Topology implements Disposable {
  private built?: LabTopology;
  private disposed = false;

  constructor(
    readonly id: string,
    private readonly nodeCount: number,
    private readonly underlayMtu: number,
  ) {}

  /** The built topology (after start()). */
  get layout(): LabTopology {
    if (!this.built) throw new Error(`lab ${this.id}: its topology is not built yet`);
    return this.built;
  }

  async start(): Promise<LabTopology> {
    this.built = await buildTopology(this.id, this.nodeCount, this.underlayMtu);
    return this.built;
  }

  /** Creates pod `name`'s namespace (loopback up) and returns its name. */
  async addPodNamespace(name: string): Promise<string> {
    const ns = `${this.id}-p-${name}`;
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await destroyTopology(this);
  }
}
