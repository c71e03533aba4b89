// Reconcile of what a previous run left, IPAM persistence across agent restarts, pool exhaustion and concurrent ADDs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniError } from '../../pkg/cni/types.js';
import { waitFor } from '../../pkg/base/async.js';
import { addNs, addReq, BLUE, conf, delNs, delReq, ip, ipJson, TestNode } from './helpers.js';

const tag = `cncr${process.pid}`;
const pods: string[] = [];
let seq = 0;

function pod(): string {
  const name = `${tag}p${seq++}`;
  addNs(name);
  pods.push(name);
  return `/var/run/netns/${name}`;
}

const podLinks = (netns: string): string[] =>
  ipJson<{ ifname: string }[]>('-n', netns.split('/').pop() ?? '', 'link', 'show').map((l) => l.ifname);

afterAll(() => {
  for (const p of pods) delNs(p);
});

/** The endpoint records in the node's state directory, as a restarted agent would read them. */
function onDisk(node: TestNode): { containerId: string; state: string; ips: string[] }[] {
  const dir = join(node.stateDir, 'endpoints');
  return readdirSync(dir).map(
    (f) =>
      JSON.parse(readFileSync(join(dir, f), 'utf8')) as { containerId: string; state: string; ips: string[] },
  );
}

// A real agent killed at each step of ADD and DEL: test/endpoint/agent-crash.test.ts.
describe('reconcile at start', () => {
  let node: TestNode;

  beforeAll(() => {
    node = new TestNode(`${tag}a`);
  });
  afterAll(() => node?.destroy());

  it('deletes host veths with castnet names that no record owns, and releases ready endpoints whose veth vanished', async () => {
    const netns = pod();
    await node.manager.add(addReq('vanish', netns));
    const ep = node.manager.endpoints()[0];
    // The pod's netns goes away while the agent is down: the kernel deletes the veth pair.
    delNs(netns.split('/').pop() ?? '');
    // The kernel destroys a deleted netns' links asynchronously.
    await waitFor(() => !node.hostVeths().includes(ep.hostIfname), { what: `${ep.hostIfname} to vanish` });
    // And a veth with castnet's name that no record owns (e.g. left by an older agent's crash).
    const name = 'cn0123456789a';
    ip('-n', node.name, 'link', 'add', name, 'type', 'veth', 'peer', 'name', 'x');
    expect(node.hostVeths()).toContain(name);
    const m = node.restart();
    await m.reconcile();
    expect(node.hostVeths()).toEqual([]);
    expect(m.endpoints().find((e) => e.endpointId === ep.endpointId)).toBeUndefined();
  });
});

describe('a failed ADD', () => {
  let node: TestNode;
  beforeAll(() => {
    node = new TestNode(`${tag}f`);
  });
  afterAll(() => node?.destroy());

  it('rolls everything back: no veth, no address held, no record', async () => {
    const netns = pod();
    // The static IPAM plugin's route via an unreachable gateway makes the last wiring step fail.
    const c = conf({
      cniVersion: '1.0.0',
      ipam: {
        type: 'static',
        addresses: [{ address: '10.44.7.7/24' }],
        routes: [{ dst: '10.99.0.0/16', gw: '192.0.2.1' }],
      },
    });
    const e = await node.manager.add(addReq('fail1', netns, c)).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(CniError);
    expect((e as CniError).code).toBe(103);
    expect((e as CniError).message).toMatch(/add route .*10\.99\.0\.0\/16.*ENETUNREACH/);
    expect(node.hostVeths()).toEqual([]);
    expect(podLinks(netns)).toEqual(['lo']);
    expect(node.manager.endpoints()).toEqual([]);
    expect(onDisk(node)).toEqual([]);
  });
});

describe('castnet IPAM', () => {
  it('keeps allocations and endpoint IDs across a restart', async () => {
    const node = new TestNode(`${tag}i`);
    try {
      const r1 = await node.manager.add(addReq('p1', pod()));
      const id1 = node.manager.endpoints()[0].endpointId;
      const m2 = node.restart();
      await m2.reconcile();
      expect(m2.endpoints().map((e) => e.containerId)).toEqual(['p1']);
      const r2 = await m2.add(addReq('p2', pod()));
      expect(r2.ips?.map((i) => i.address)).not.toEqual(r1.ips?.map((i) => i.address));
      const id2 = m2.endpoints().find((e) => e.containerId === 'p2')?.endpointId ?? 0;
      expect(id2).toBeGreaterThan(id1);
      // IDs are not reused right away either.
      await m2.del(delReq('p2', undefined));
      await m2.add(addReq('p3', pod()));
      expect(m2.endpoints().find((e) => e.containerId === 'p3')?.endpointId).toBeGreaterThan(id2);
    } finally {
      node.destroy();
    }
  });

  it('answers 100 naming the network and pool when the pool is exhausted, leaving nothing', async () => {
    const tiny = { ...BLUE, subnets: ['10.45.0.0/24'] };
    // /30 blocks: 4 addresses, of which the first and last are never handed out.
    const node = new TestNode(`${tag}x`, { networks: [tiny], poolSizes: { v4: 30, v6: 120 }, poolIndex: 2 });
    try {
      const r1 = await node.manager.add(addReq('x1', pod()));
      const r2 = await node.manager.add(addReq('x2', pod()));
      expect([r1, r2].map((r) => r.ips?.[0].address)).toEqual(['10.45.0.9/24', '10.45.0.10/24']);
      const netns = pod();
      const e = await node.manager.add(addReq('x3', netns)).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((e as CniError).code).toBe(100);
      expect((e as CniError).message).toMatch(
        /network "blue": pool 10\.45\.0\.8\/30 \(pool index 2\) has no free address/,
      );
      expect(podLinks(netns)).toEqual(['lo']);
      expect(node.hostVeths()).toHaveLength(2);
      await node.manager.del(delReq('x1', undefined));
      const r3 = await node.manager.add(addReq('x3', netns));
      expect(r3.ips?.[0].address).toBe('10.45.0.9/24');
    } finally {
      node.destroy();
    }
  });
});

describe('concurrency', () => {
  it('gives 30 simultaneous ADDs distinct addresses, IDs and interfaces', async () => {
    const node = new TestNode(`${tag}c`);
    try {
      const netnses = Array.from({ length: 30 }, () => pod());
      const results = await Promise.all(netnses.map((n, i) => node.manager.add(addReq(`cc${i}`, n))));
      const v4 = results.map((r) => r.ips?.[0].address);
      expect(new Set(v4).size).toBe(30);
      expect(new Set(results.map((r) => r.ips?.[1].address)).size).toBe(30);
      expect(new Set(node.manager.endpoints().map((e) => e.endpointId)).size).toBe(30);
      expect(new Set(results.map((r) => r.interfaces?.[0].name)).size).toBe(30);
      expect(node.hostVeths()).toHaveLength(30);
      const m2 = node.restart();
      expect(m2.endpoints()).toHaveLength(30);
      await Promise.all(netnses.map((n, i) => m2.del(delReq(`cc${i}`, n))));
      expect(node.hostVeths()).toEqual([]);
      expect(m2.endpoints()).toEqual([]);
    } finally {
      node.destroy();
    }
  });
});
