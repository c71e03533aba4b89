import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run, runIn } from '../sys/exec.js';
import {
  buildTopology,
  destroyTopology,
  LAB_RUN_DIR,
  newLabId,
  nodeAddress,
  removeLeftoverLabs,
  Topology,
} from './topology.js';

async function netnsNames(): Promise<string[]> {
  return (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!);
}

describe('lab topology (real namespaces)', () => {
  it('builds nodes that reach each other over the underlay, then removes everything', async () => {
    const topo = await buildTopology(newLabId(), 3, 1500);
    try {
      expect(topo.nodes.map((n) => n.address)).toEqual([nodeAddress(0), nodeAddress(1), nodeAddress(2)]);
      await runIn(topo.nodes[0]!.ns, 'ping', ['-c1', '-W2', nodeAddress(2)]);
    } finally {
      await destroyTopology(topo);
    }
    const left = await netnsNames();
    expect(left.filter((n) => n.startsWith(topo.id))).toEqual([]);
    expect(existsSync(topo.dir)).toBe(false);
  });

  it("removes a dead owner's leftovers but not a live lab's", async () => {
    const live = await buildTopology(newLabId(), 1, 1500);
    const deadId = newLabId();
    try {
      await buildTopology(deadId, 1, 1500);
      // Pretend the owner died: a PID that cannot exist.
      await run('sh', ['-c', `echo 4194304 > ${join(LAB_RUN_DIR, deadId, 'owner.pid')}`]);
      const removed = await removeLeftoverLabs();
      expect(removed).toContain(deadId);
      expect(removed).not.toContain(live.id);
      const names = await netnsNames();
      expect(names.some((n) => n.startsWith(deadId))).toBe(false);
      expect(names.some((n) => n.startsWith(live.id))).toBe(true);
    } finally {
      await destroyTopology(live);
      await destroyTopology({ id: deadId });
    }
  });

  it("removes the pods' namespaces with the nodes', and is idempotent", async () => {
    const topology = new Topology(newLabId(), 1, 1500);
    try {
      await topology.start();
      const pod = await topology.addPodNamespace('a');
      expect(await netnsNames()).toContain(pod);
    } finally {
      await topology.dispose();
      await topology.dispose();
    }
    expect((await netnsNames()).filter((n) => n.startsWith(topology.id))).toEqual([]);
    expect(existsSync(join(LAB_RUN_DIR, topology.id))).toBe(false);
  });

  it('tears down what a failed build created', async () => {
    // No link takes a 100000-byte MTU: the build fails after creating the underlay namespace.
    const topology = new Topology(newLabId(), 2, 100000);
    await expect(topology.start()).rejects.toThrow(/mtu 100000/);
    expect((await netnsNames()).some((n) => n.startsWith(topology.id))).toBe(true);
    await topology.dispose();
    expect((await netnsNames()).filter((n) => n.startsWith(topology.id))).toEqual([]);
    expect(() => topology.layout).toThrow(/not built/);
  });
});
