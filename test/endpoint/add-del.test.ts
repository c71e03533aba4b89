// ADD, DEL, CHECK and GC of castnet endpoints against the real kernel, in namespaces of this file.
import { execFileSync } from 'node:child_process';
import { CniError } from '../../pkg/cni/types.js';
import { waitFor } from '../../pkg/base/async.js';
import { addNs, addReq, BLUE, conf, delNs, delReq, ip, ipJson, pings, TestNode } from './helpers.js';

const tag = `cnad${process.pid}`;
let node: TestNode;
const pods: string[] = [];

function pod(n: number): string {
  const name = `${tag}p${n}`;
  addNs(name);
  pods.push(name);
  return name;
}

interface IpLink {
  ifname: string;
  address: string;
  mtu: number;
  master?: string;
  operstate: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

const link = (ns: string, dev: string): IpLink => ipJson<IpLink[]>('-n', ns, 'addr', 'show', 'dev', dev)[0];
const globalAddrs = (l: IpLink): string[] =>
  l.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);

async function rejection(p: Promise<unknown>): Promise<CniError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof CniError)) throw new Error(`expected a CniError, got ${String(e)}`);
  return e;
}

beforeAll(() => {
  node = new TestNode(`${tag}n`);
});

afterAll(() => {
  for (const p of pods) delNs(p);
  node?.destroy();
});

describe('ADD', () => {
  it('wires a veth with the requested MAC, MTU and addresses, on the network bridge, and records it', async () => {
    const p = pod(1);
    const res = await node.manager.add(
      addReq('c1', `/var/run/netns/${p}`, conf({ runtimeConfig: { mac: '02:11:22:33:44:55' } }), {
        args: { K8S_POD_NAMESPACE: 'ns1', K8S_POD_NAME: 'web-0', K8S_POD_UID: 'u-1', IgnoreUnknown: '1' },
      }),
    );
    const eth0 = link(p, 'eth0');
    expect(eth0.address).toBe('02:11:22:33:44:55');
    expect(eth0.mtu).toBe(1400);
    expect(eth0.operstate).not.toBe('DOWN');
    // Pool index 1 of 10.44.0.0/16 is 10.44.1.0/24, of fd44::/64 is fd44::100/120; first addresses skipped.
    expect(globalAddrs(eth0)).toEqual(['10.44.1.1/16', 'fd44::101/64']);

    const [ep] = node.manager.endpoints();
    expect(ep).toMatchObject({
      state: 'ready',
      network: 'blue',
      containerId: 'c1',
      ifname: 'eth0',
      mac: '02:11:22:33:44:55',
      ips: ['10.44.1.1/16', 'fd44::101/64'],
      pod: { namespace: 'ns1', name: 'web-0', uid: 'u-1' },
    });
    expect(ep.endpointId).toBeGreaterThan(0);

    const host = link(node.name, ep.hostIfname);
    expect(host.master).toBe('cnbr000042');
    expect(host.mtu).toBe(1400);
    expect(host.addr_info).toEqual([]); // no IPv6 link-local on the node side
    const port = ipJson<
      { ifname: string; linkinfo: { info_slave_data: { learning: boolean; flood: boolean } } }[]
    >('-d', '-n', node.name, 'link', 'show', 'dev', ep.hostIfname)[0];
    expect(port.linkinfo.info_slave_data.learning).toBe(false);
    expect(port.linkinfo.info_slave_data.flood).toBe(false); // unknown unicast reaches no endpoint
    const fdb = JSON.parse(
      execFileSync('bridge', ['-n', node.name, '-j', 'fdb', 'show', 'dev', ep.hostIfname], {
        encoding: 'utf8',
      }),
    ) as { mac: string; state?: string }[];
    expect(fdb).toContainEqual(expect.objectContaining({ mac: '02:11:22:33:44:55', state: 'static' }));

    expect(res).toEqual({
      cniVersion: '1.1.0',
      interfaces: [
        { name: ep.hostIfname, mac: host.address },
        { name: 'eth0', mac: '02:11:22:33:44:55', mtu: 1400, sandbox: `/var/run/netns/${p}` },
      ],
      ips: [
        { address: '10.44.1.1/16', interface: 1 },
        { address: 'fd44::101/64', interface: 1 },
      ],
    });
  });

  it('takes the MAC from CNI_ARGS MAC= and the MTU from the config, and appends to prevResult', async () => {
    const p = pod(2);
    const prevResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'lo0', sandbox: `/var/run/netns/${p}` }],
      ips: [{ address: '192.0.2.9/24', interface: 0 }],
    };
    const res = await node.manager.add(
      addReq('c2', `/var/run/netns/${p}`, conf({ mtu: 1300, prevResult }), {
        args: { MAC: '02:00:00:00:00:22' },
      }),
    );
    expect(link(p, 'eth0')).toMatchObject({ address: '02:00:00:00:00:22', mtu: 1300 });
    expect(res.interfaces?.[0]).toEqual({ name: 'lo0', sandbox: `/var/run/netns/${p}` });
    expect(res.ips?.[0]).toEqual({ address: '192.0.2.9/24', interface: 0 });
    expect(res.ips?.slice(1).every((i) => i.interface === 2)).toBe(true);
  });

  it('records the KubeVirt VM identity and honours requested addresses (runtimeConfig.ips)', async () => {
    const p = pod(17);
    const res = await node.manager.add(
      addReq(
        'vm1',
        `/var/run/netns/${p}`,
        conf({ runtimeConfig: { ips: ['10.44.250.9/16', 'fd44::beef'] } }),
        {
          args: { K8S_POD_NAMESPACE: 'vms', K8S_POD_NAME: 'virt-launcher-db-x7k2p', CASTNET_VM_NAME: 'db' },
        },
      ),
    );
    expect(res.ips?.map((i) => i.address)).toEqual(['10.44.250.9/16', 'fd44::beef/64']);
    expect(globalAddrs(link(p, 'eth0'))).toEqual(['10.44.250.9/16', 'fd44::beef/64']);
    const ep = node.manager.endpoints().find((x) => x.containerId === 'vm1');
    expect(ep?.vm).toEqual({ namespace: 'vms', name: 'db' });
    expect(ep?.pod).toEqual({ namespace: 'vms', name: 'virt-launcher-db-x7k2p' });
    // The same address cannot be requested twice.
    const again = await rejection(
      node.manager.add(
        addReq('vm2', `/var/run/netns/${pod(18)}`, conf({ runtimeConfig: { ips: ['10.44.250.9'] } })),
      ),
    );
    expect(again.message).toMatch(/runtimeConfig.ips\[0\]: 10.44.250.9 is already in use/);
  });

  it('replaces a stale record of the same attachment whose interface is gone', async () => {
    const p = pod(19);
    await node.manager.add(addReq('st1', `/var/run/netns/${p}`));
    const first = node.manager.endpoints().find((x) => x.containerId === 'st1');
    ip('-n', node.name, 'link', 'del', first?.hostIfname ?? '');
    const res = await node.manager.add(addReq('st1', `/var/run/netns/${p}`));
    const second = node.manager.endpoints().filter((x) => x.containerId === 'st1');
    expect(second).toHaveLength(1);
    expect(second[0].endpointId).not.toBe(first?.endpointId);
    expect(globalAddrs(link(p, 'eth0'))).toEqual(res.ips?.map((i) => i.address));
  });

  it('lets two endpoints of the network on one node reach each other (IPv4 and IPv6)', async () => {
    const [a, b] = [pod(3), pod(4)];
    const ra = await node.manager.add(addReq('c3', `/var/run/netns/${a}`));
    const rb = await node.manager.add(addReq('c4', `/var/run/netns/${b}`));
    const addrOf = (r: typeof ra, i: number) => (r.ips?.[i].address ?? '').split('/')[0];
    expect(pings(a, addrOf(rb, 0))).toBe(true);
    expect(pings(b, addrOf(ra, 0))).toBe(true);
    expect(pings(a, addrOf(rb, 1))).toBe(true);
  });

  it('keeps networks apart: a pod on another network with an address of the same subnet is unreachable', async () => {
    const green = { ...BLUE, name: 'green', id: 0x43, subnets: ['10.44.0.0/16', 'fd45::/64'] };
    node.manager.setNetworks([BLUE, green]);
    const [a, b, c] = [pod(21), pod(22), pod(23)];
    const ra = await node.manager.add(addReq('n1', `/var/run/netns/${a}`));
    await node.manager.add(
      addReq(
        'n2',
        `/var/run/netns/${b}`,
        conf({ name: 'green', runtimeConfig: { ips: ['10.44.77.1', 'fd45::77'] } }),
      ),
    );
    await node.manager.add(addReq('n3', `/var/run/netns/${c}`, conf({ name: 'green' })));
    expect(
      ipJson<{ master?: string }[]>('-n', node.name, 'link', 'show', 'master', 'cnbr000043'),
    ).toHaveLength(2);
    expect(pings(c, '10.44.77.1')).toBe(true);
    expect(pings(c, 'fd45::77')).toBe(true);
    expect(pings(a, '10.44.77.1')).toBe(false);
    expect(pings(b, (ra.ips?.[0].address ?? '').split('/')[0])).toBe(false);
  });

  it('refuses an ifname already in the netns (101) and a missing netns (3), leaving nothing', async () => {
    const p = pod(5);
    ip('-n', p, 'link', 'add', 'eth0', 'type', 'bridge');
    const before = node.hostVeths().length;
    const e = await rejection(node.manager.add(addReq('c5', `/var/run/netns/${p}`)));
    expect(e.code).toBe(101);
    expect(e.message).toMatch(/"eth0" already exists/);
    const gone = await rejection(node.manager.add(addReq('c6', `/var/run/netns/${tag}nope`)));
    expect(gone.code).toBe(3);
    expect(gone.message).toMatch(/CNI_NETNS/);
    expect(node.hostVeths()).toHaveLength(before);
    expect(node.manager.endpoints().map((x) => x.containerId)).not.toContain('c5');
  });

  it('rejects an invalid or duplicate MAC (102) and an unknown network (7) naming the field', async () => {
    const p = pod(6);
    const bad = await rejection(
      node.manager.add(addReq('c7', `/var/run/netns/${p}`, conf(), { args: { MAC: '01:00:5e:00:00:01' } })),
    );
    expect(bad.code).toBe(102);
    expect(bad.message).toMatch(/CNI_ARGS MAC: .*multicast/);
    const dup = await rejection(
      node.manager.add(
        addReq('c7', `/var/run/netns/${p}`, conf({ runtimeConfig: { mac: '02:11:22:33:44:55' } })),
      ),
    );
    expect(dup.code).toBe(102);
    expect(dup.message).toMatch(
      /runtimeConfig.mac: 02:11:22:33:44:55 is already used by container c1 interface eth0/,
    );
    const unknown = await rejection(
      node.manager.add(addReq('c7', `/var/run/netns/${p}`, conf({ network: 'red' }))),
    );
    expect(unknown.code).toBe(7);
    expect(unknown.message).toMatch(/network: "red" is not a network of node/);
    expect(link(p, 'lo').ifname).toBe('lo');
    expect(ipJson('-n', p, 'link', 'show').length).toBe(1);
  });
});

describe('handing multicast and broadcast to the data plane', () => {
  it('turns off flooding on an endpoint port and snooping on its bridge', async () => {
    const p = pod(16);
    await node.manager.add(addReq('f1', `/var/run/netns/${p}`));
    const ep = node.manager.endpoints().find((x) => x.containerId === 'f1');
    node.manager.setPortFlooding(
      { containerId: 'f1', ifname: 'eth0' },
      { mcastFlood: false, bcastFlood: false },
    );
    const port = ipJson<{ linkinfo: { info_slave_data: Record<string, unknown> } }[]>(
      '-d',
      '-n',
      node.name,
      'link',
      'show',
      'dev',
      ep?.hostIfname ?? '',
    )[0].linkinfo.info_slave_data;
    expect(port).toMatchObject({ mcast_flood: false, bcast_flood: false, flood: false, learning: false });
    node.manager.setBridgeSnooping('blue', false);
    const br = ipJson<{ linkinfo: { info_data: { mcast_snooping: number } } }[]>(
      '-d',
      '-n',
      node.name,
      'link',
      'show',
      'cnbr000042',
    );
    expect(br[0].linkinfo.info_data.mcast_snooping).toBe(0);
    expect(() =>
      node.manager.setPortFlooding({ containerId: 'nope', ifname: 'eth0' }, { mcastFlood: false }),
    ).toThrow(/no endpoint for container nope interface eth0/);
  });
});

describe('castnet IPAM and the rest of the cluster', () => {
  it("skips addresses the directory shows on other nodes (a migrated VM's IP), but honours a requested one", async () => {
    const p1 = pod(71);
    const first = await node.manager.add(addReq('ipx1', `/var/run/netns/${p1}`, conf()));
    const v4 = first.ips![0]!.address.split('/')[0]!;
    const next = v4.replace(/\.(\d+)$/, (_, n: string) => `.${Number(n) + 1}`);
    const after = v4.replace(/\.(\d+)$/, (_, n: string) => `.${Number(n) + 2}`);
    node.manager.setAddressesInUseElsewhere(new Map([['blue', new Set([next])]]));
    try {
      const p2 = pod(72);
      const second = await node.manager.add(addReq('ipx2', `/var/run/netns/${p2}`, conf()));
      expect(second.ips![0]!.address).toBe(`${after}/16`);
      // The migration target asks for the VM's own address explicitly: that is allowed.
      const p3 = pod(73);
      const third = await node.manager.add(
        addReq('ipx3', `/var/run/netns/${p3}`, conf({ runtimeConfig: { ips: [`${next}/16`] } })),
      );
      expect(third.ips![0]!.address).toBe(`${next}/16`);
      for (const [c, p] of [
        ['ipx1', p1],
        ['ipx2', p2],
        ['ipx3', p3],
      ] as const)
        await node.manager.del(delReq(c, `/var/run/netns/${p}`, conf()));
    } finally {
      node.manager.setAddressesInUseElsewhere(new Map());
    }
  });
});

describe('DEL', () => {
  it('removes the veth and record, and is idempotent', async () => {
    const p = pod(7);
    await node.manager.add(addReq('d1', `/var/run/netns/${p}`));
    const ep = node.manager.endpoints().find((x) => x.containerId === 'd1');
    await node.manager.del(delReq('d1', `/var/run/netns/${p}`));
    await node.manager.del(delReq('d1', `/var/run/netns/${p}`));
    expect(node.hostVeths()).not.toContain(ep?.hostIfname);
    expect(ipJson('-n', p, 'link', 'show').map((l) => l.ifname)).toEqual(['lo']);
    expect(node.manager.endpoints().find((x) => x.containerId === 'd1')).toBeUndefined();
  });

  it('copes with a netns that is already gone, and with an attachment it never saw', async () => {
    const p = pod(8);
    await node.manager.add(addReq('d2', `/var/run/netns/${p}`));
    delNs(p);
    await node.manager.del(delReq('d2', `/var/run/netns/${p}`));
    await node.manager.del(delReq('d2', undefined));
    await node.manager.del(delReq('never-seen', ''));
    expect(node.manager.endpoints().find((x) => x.containerId === 'd2')).toBeUndefined();
  });

  it('is not needed when the pod netns vanished: the sweep releases the endpoint', async () => {
    const p = pod(20);
    await node.manager.add(addReq('d4', `/var/run/netns/${p}`));
    const ep = node.manager.endpoints().find((x) => x.containerId === 'd4');
    delNs(p);
    // The kernel destroys a deleted netns' links asynchronously.
    await waitFor(() => !node.hostVeths().includes(ep!.hostIfname), { what: `${ep!.hostIfname} to vanish` });
    await node.manager.sweep();
    expect(node.manager.endpoints().find((x) => x.containerId === 'd4')).toBeUndefined();
  });

  it('frees the addresses for reuse', async () => {
    const p = pod(9);
    const r1 = await node.manager.add(addReq('d3', `/var/run/netns/${p}`));
    const held = r1.ips!.map((i) => i.address);
    expect(held).toHaveLength(2);
    // Another endpoint asking for exactly those addresses is refused while d3 holds them ...
    const q = pod(24);
    const again = (id: string) =>
      node.manager.add(addReq(id, `/var/run/netns/${q}`, conf({ runtimeConfig: { ips: held } })));
    expect((await rejection(again('d3b'))).message).toContain('is already in use on network "blue"');
    // ... and gets them once DEL released them.
    await node.manager.del(delReq('d3', `/var/run/netns/${p}`));
    const r2 = await again('d3c');
    expect(r2.ips!.map((i) => i.address)).toEqual(held);
    expect(globalAddrs(link(q, 'eth0'))).toEqual(held);
  });
});

describe('CHECK', () => {
  it('passes on what ADD built and detects a removed address', async () => {
    const p = pod(10);
    const res = await node.manager.add(addReq('k1', `/var/run/netns/${p}`));
    const req = addReq('k1', `/var/run/netns/${p}`, conf({ prevResult: res }));
    await node.manager.check(req);
    ip('-n', p, 'addr', 'del', res.ips?.[0].address ?? '', 'dev', 'eth0');
    const e = await rejection(node.manager.check(req));
    expect(e.message).toMatch(/lacks address\(es\) 10\.44\.1\.\d+\/16/);
  });

  it('tolerates a chained plugin changing MTU and promiscuity', async () => {
    const p = pod(11);
    const res = await node.manager.add(addReq('k2', `/var/run/netns/${p}`));
    ip('-n', p, 'link', 'set', 'eth0', 'mtu', '1280', 'promisc', 'on');
    await node.manager.check(addReq('k2', `/var/run/netns/${p}`, conf({ prevResult: res })));
  });

  it('passes after KubeVirt bridge-binding rewiring, and DEL still cleans up', async () => {
    const p = pod(12);
    const res = await node.manager.add(addReq('k3', `/var/run/netns/${p}`));
    // What virt-launcher does: rename our interface, move its addresses away, give it a random MAC,
    // enslave it to an in-pod bridge, and put a link with the original name in its place.
    for (const a of res.ips ?? []) ip('-n', p, 'addr', 'del', a.address, 'dev', 'eth0');
    ip('-n', p, 'link', 'set', 'eth0', 'down');
    ip('-n', p, 'link', 'set', 'eth0', 'name', 'a1b2c3-nic', 'address', '02:fe:00:00:00:01');
    ip('-n', p, 'link', 'add', 'k6t-a1b2c3', 'type', 'bridge');
    ip('-n', p, 'link', 'set', 'a1b2c3-nic', 'master', 'k6t-a1b2c3', 'up');
    ip('-n', p, 'link', 'add', 'eth0', 'type', 'bridge'); // stands in for KubeVirt's dummy
    await node.manager.check(addReq('k3', `/var/run/netns/${p}`, conf({ prevResult: res })));

    await node.manager.del(delReq('k3', `/var/run/netns/${p}`));
    expect(ipJson<{ ifname: string }[]>('-n', p, 'link', 'show').map((l) => l.ifname)).not.toContain(
      'a1b2c3-nic',
    );
  });

  it('fails for an attachment castnet does not know', async () => {
    const p = pod(13);
    const e = await rejection(node.manager.check(addReq('k4', `/var/run/netns/${p}`)));
    expect(e.message).toMatch(/no endpoint for this attachment/);
  });
});

describe('GC', () => {
  it('removes every attachment of the network not listed as valid', async () => {
    const [a, b] = [pod(14), pod(15)];
    await node.manager.add(addReq('g1', `/var/run/netns/${a}`));
    await node.manager.add(addReq('g2', `/var/run/netns/${b}`));
    const keep = node.manager.endpoints().filter((x) => x.containerId !== 'g2');
    await node.manager.gc({
      conf: conf(),
      cniPath: '/usr/lib/cni',
      validAttachments: keep.map((x) => ({ containerId: x.containerId, ifname: x.ifname })),
    });
    const ids = node.manager.endpoints().map((x) => x.containerId);
    expect(ids).toContain('g1');
    expect(ids).not.toContain('g2');
    expect(ipJson('-n', b, 'link', 'show')).toHaveLength(1);
    expect(node.hostVeths()).toHaveLength(node.manager.endpoints().length);
  });
});

describe('STATUS', () => {
  it('is ready for a known network and answers 50 for an unknown one', async () => {
    await node.manager.status(conf());
    const e = await rejection(node.manager.status(conf({ network: 'red' })));
    expect(e.code).toBe(50);
  });
});
