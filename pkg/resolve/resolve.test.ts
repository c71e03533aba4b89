import fc from 'fast-check';
import {
  buildIPv4Frame,
  buildIPv6Frame,
  ICMPV6_NEIGHBOR_ADVERT,
  ICMPV6_NEIGHBOR_SOLICIT,
  ICMPV6_REDIRECT,
  ICMPV6_ROUTER_ADVERT,
  ICMPV6_ROUTER_SOLICIT,
  IPPROTO_UDP,
  parseFrame,
  type ParsedFrame,
} from '../frame/index.js';
import { ndpFrame } from '../../test/harness/ndp.js';
import type { Directory, EndpointRecord, GroupSpec, MembershipRecord } from '../lookup/port.js';
import {
  arpTarget,
  buildIndex,
  checkSource,
  receiveTargets,
  Resolver,
  type Delivery,
  type IndexedEndpoint,
} from './index.js';

const nodes = ['n1', 'n2', 'n3'].map((name, i) => ({
  name,
  address: `192.0.2.${i + 1}`,
  port: 4790,
  poolIndex: i,
}));
const net = (name: string, id: number) => ({
  name,
  id,
  subnets: ['10.0.0.0/24', 'fd00::/64'],
  mtu: 1400,
  multicast: true,
  broadcast: true,
});
const ep = (network: string, node: string, id: number, host: number): EndpointRecord => ({
  network,
  node,
  endpointId: id,
  mac: `02:00:00:00:${network === 'red' ? '01' : '02'}:${host.toString(16).padStart(2, '0')}`,
  ips: [`10.0.0.${host}`, `fd00::${host.toString(16)}`],
});
const member = (
  network: string,
  group: string,
  node: string,
  endpointId: number,
  mode: 'include' | 'exclude' = 'exclude',
  sources: string[] = [],
): MembershipRecord => ({
  network,
  group,
  node,
  endpointId,
  filter: { mode, sources },
});
const group = (name: string, address: string, extra: Partial<GroupSpec> = {}): GroupSpec => ({
  namespace: 'ns',
  name,
  network: 'red',
  address,
  staticMembers: [],
  nestedGroups: [],
  allowedSources: [],
  ...extra,
});

// red and blue overlap (same subnets, same group addresses); endpoint host N lives on node ((N-1) % 3) + 1.
function directory(over: Partial<Directory> = {}): Directory {
  const endpoints: EndpointRecord[] = [];
  for (const network of ['red', 'blue']) {
    for (let h = 1; h <= 9; h++)
      endpoints.push(ep(network, `n${((h - 1) % 3) + 1}`, (network === 'red' ? 100 : 200) + h, h));
  }
  return {
    networks: [net('red', 1), net('blue', 2)],
    nodes,
    endpoints,
    groups: [],
    memberships: [],
    ...over,
  };
}

function v4(src: number, dst: string, dstMac: string, network = 'red'): Uint8Array {
  const host = src.toString(16).padStart(2, '0');
  return buildIPv4Frame({
    dstMac,
    srcMac: `02:00:00:00:${network === 'red' ? '01' : '02'}:${host}`,
    src: `10.0.0.${src}`,
    dst,
    protocol: IPPROTO_UDP,
    ttl: 1,
    payload: new Uint8Array(20),
  });
}

function parsed(b: Uint8Array): ParsedFrame {
  const r = parseFrame(b);
  if (!r.ok) throw new Error(r.error.reason);
  return r.value;
}

/** Destinations as sorted "node/id" strings. */
function targets(d: Delivery, localNode = 'n1'): string[] {
  return [
    ...d.local.map((id) => `${localNode}/${id}`),
    ...d.remote.flatMap((b) => b.endpointIds.map((id) => `${b.node.name}/${id}`)),
  ].sort();
}

function setup(over: Partial<Directory> = {}) {
  const index = buildIndex(directory(over), 'n1');
  expect(index.problems).toEqual([]);
  const resolver = new Resolver(index);
  const sender = (id: number) => index.localEndpoint(id)!;
  const send = (s: IndexedEndpoint, frame: Uint8Array, loopback = false) => {
    const r = resolver.resolveFrame(s, parsed(frame), frame, { loopback });
    if (!r.ok) return r.error.code;
    return targets(r.value);
  };
  return { index, resolver, sender, send };
}

describe('broadcast and link-local', () => {
  const allRedBut1 = ['n1/104', 'n1/107', 'n2/102', 'n2/105', 'n2/108', 'n3/103', 'n3/106', 'n3/109'];
  it.each([
    ['ff:ff:ff:ff:ff:ff to 255.255.255.255', '255.255.255.255', 'ff:ff:ff:ff:ff:ff'],
    ['the subnet broadcast', '10.0.0.255', 'ff:ff:ff:ff:ff:ff'],
    ['224.0.0.251 (mDNS)', '224.0.0.251', '01:00:5e:00:00:fb'],
  ])('%s reaches every endpoint of the network but the sender, and no other network', (_n, dst, mac) => {
    const { sender, send } = setup();
    expect(send(sender(101), v4(1, dst, mac))).toEqual(allRedBut1);
  });

  it('IPv6 all-nodes and solicited-node multicast reach the whole network', () => {
    const { sender, send } = setup();
    for (const [dst, mac] of [
      ['ff02::1', '33:33:00:00:00:01'],
      ['ff02::1:ff00:5', '33:33:ff:00:00:05'],
    ]) {
      const f = buildIPv6Frame({
        dstMac: mac,
        srcMac: '02:00:00:00:01:01',
        src: 'fd00::1',
        dst,
        nextHeader: 58,
        hopLimit: 255,
        payload: new Uint8Array(24),
      });
      expect(send(sender(101), f)).toEqual(allRedBut1);
    }
  });

  it('partitions by node: local IDs and one batch per remote node with its address', () => {
    const { resolver, sender } = setup();
    const f = v4(1, '255.255.255.255', 'ff:ff:ff:ff:ff:ff');
    const r = resolver.resolveFrame(sender(101), parsed(f), f);
    expect(r.ok && r.value.local).toEqual([104, 107]);
    expect(r.ok && r.value.remote.map((b) => [b.node.address, b.endpointIds])).toEqual([
      ['192.0.2.2', [102, 105, 108]],
      ['192.0.2.3', [103, 106, 109]],
    ]);
  });

  it('honours broadcast: false, but keeps link-local working', () => {
    const d = directory();
    d.networks[0].broadcast = false;
    const { sender, send } = setup({ networks: d.networks });
    expect(send(sender(101), v4(1, '255.255.255.255', 'ff:ff:ff:ff:ff:ff'))).toBe('broadcast-disabled');
    expect(send(sender(101), v4(1, '224.0.0.1', '01:00:5e:00:00:01'))).toHaveLength(8);
  });
});

describe('groups', () => {
  const G = '239.1.1.1';
  const GMAC = '01:00:5e:01:01:01';

  it('delivers to IGMP members of the same network only, without the sender', () => {
    const { sender, send } = setup({
      memberships: [
        member('red', G, 'n1', 101),
        member('red', G, 'n2', 102),
        member('blue', G, 'n3', 203),
        member('red', G, 'n3', 106),
      ],
    });
    expect(send(sender(101), v4(1, G, GMAC))).toEqual(['n2/102', 'n3/106']);
    expect(send(sender(101), v4(1, G, GMAC), true)).toEqual(['n1/101', 'n2/102', 'n3/106']);
    expect(send(sender(201), v4(1, G, GMAC, 'blue'))).toEqual(['n3/203']);
  });

  it('honours INCLUDE and EXCLUDE source filters', () => {
    const { sender, send } = setup({
      memberships: [
        member('red', G, 'n2', 102, 'include', ['10.0.0.1']),
        member('red', G, 'n3', 103, 'exclude', ['10.0.0.1']),
      ],
    });
    expect(send(sender(101), v4(1, G, GMAC))).toEqual(['n2/102']);
    expect(send(sender(104), v4(4, G, GMAC))).toEqual(['n3/103']);
  });

  it('SSM groups ignore EXCLUDE memberships', () => {
    const S = '232.1.1.1';
    const { sender, send } = setup({
      memberships: [
        member('red', S, 'n2', 102, 'include', ['10.0.0.1']),
        member('red', S, 'n3', 103, 'exclude', []),
      ],
    });
    expect(send(sender(101), v4(1, S, '01:00:5e:01:01:01'))).toEqual(['n2/102']);
    expect(send(sender(104), v4(4, S, '01:00:5e:01:01:01'))).toEqual([]);
  });

  it('remembers a bounded number of group addresses, however many distinct ones senders use', () => {
    const S = '232.1.1.1';
    const index = buildIndex(
      directory({
        memberships: [
          member('red', S, 'n2', 102, 'include', ['10.0.0.1']),
          member('red', S, 'n3', 103, 'exclude', []),
        ],
      }),
      'n1',
    );
    const resolver = new Resolver(index, 64);
    const sender = index.localEndpoint(101)!;
    const delivered = () => {
      const r = resolver.resolveGroup(sender, S, '10.0.0.1');
      if (!r.ok) throw new Error(r.error.reason);
      return targets(r.value);
    };
    expect(delivered()).toEqual(['n2/102']);
    for (let i = 0; i < 5000; i++)
      resolver.resolveGroup(sender, `239.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, undefined);
    expect(resolver.cacheSizes.ssmGroups).toBeLessThanOrEqual(64);
    expect(resolver.cacheSizes.resolutions).toBeLessThanOrEqual(64);
    // Evicted and recomputed, the SSM group still ignores the EXCLUDE membership.
    expect(delivered()).toEqual(['n2/102']);
  });

  it('expands static members, group-address members and nested groups recursively, de-duplicated', () => {
    const { sender, send } = setup({
      groups: [
        group('top', G, { staticMembers: ['10.0.0.2', '239.2.2.2'], nestedGroups: ['inner'] }),
        group('by-address', '239.2.2.2', { staticMembers: ['02:00:00:00:01:03', '10.0.0.2'] }),
        group('inner', '239.3.3.3', { staticMembers: ['fd00::5', '10.0.0.1'] }),
      ],
      memberships: [member('red', '239.3.3.3', 'n3', 106)],
    });
    expect(send(sender(101), v4(1, G, GMAC))).toEqual(['n2/102', 'n2/105', 'n3/103', 'n3/106']);
  });

  it('a group with allowed sources delivers only their traffic', () => {
    const { sender, send } = setup({
      groups: [group('ssm', G, { staticMembers: ['10.0.0.2'], allowedSources: ['10.0.0.4'] })],
    });
    expect(send(sender(101), v4(1, G, GMAC))).toEqual([]);
    expect(send(sender(104), v4(4, G, GMAC))).toEqual(['n2/102']);
  });

  it('a group that names its senders refuses everyone else, by IP or CIDR', () => {
    const { sender, send } = setup({
      groups: [
        group('feed', G, {
          staticMembers: ['10.0.0.2', '10.0.0.3'],
          allowedSenders: ['10.0.0.1', '10.0.0.4/31'],
        }),
      ],
    });
    expect(send(sender(101), v4(1, G, GMAC))).toEqual(['n2/102', 'n3/103']);
    expect(send(sender(104), v4(4, G, GMAC))).toEqual(['n2/102', 'n3/103']);
    expect(send(sender(107), v4(7, G, GMAC))).toBe('sender-not-allowed');
    // The same address on another network is not restricted.
    expect(send(sender(201), v4(1, G, GMAC))).toEqual([]);
  });

  it('a declared MAC group narrows non-IP multicast; an undeclared one floods', () => {
    const mk = (dst: string) => {
      const f = v4(1, '10.0.0.9', dst);
      f[12] = 0x88;
      f[13] = 0xb5; // local experimental ethertype: not IP
      return f;
    };
    const { sender, send } = setup({
      groups: [group('mac', '01:80:c2:00:00:0e', { staticMembers: ['10.0.0.3'] })],
    });
    expect(send(sender(101), mk('01:80:c2:00:00:0e'))).toEqual(['n3/103']);
    expect(send(sender(101), mk('01:80:c2:00:00:0f'))).toHaveLength(8);
  });

  it('rejects cycles and excessive depth at resolution, with the path', () => {
    const cyc = setup({
      groups: [group('a', G, { nestedGroups: ['b'] }), group('b', '239.0.0.2', { staticMembers: [G] })],
    });
    const r = cyc.resolver.resolveGroup(cyc.sender(101), G, '10.0.0.1');
    expect(!r.ok && r.error).toMatchObject({ code: 'group-cycle', path: ['ns/a', 'ns/b', 'ns/a'] });
    const chain = Array.from({ length: 11 }, (_, i) =>
      group(`g${i}`, `239.0.1.${i}`, {
        nestedGroups: i < 10 ? [`g${i + 1}`] : [],
        staticMembers: ['10.0.0.2'],
      }),
    );
    const deep = setup({ groups: chain });
    const d = deep.resolver.resolveGroup(deep.sender(101), '239.0.1.0', '10.0.0.1');
    expect(!d.ok && d.error.code).toBe('group-too-deep');
    const ok = deep.resolver.resolveGroup(deep.sender(101), '239.0.1.2', '10.0.0.1');
    expect(ok.ok && targets(ok.value)).toEqual(['n2/102']);
  });

  it('tenant isolation: same group, same addresses, different networks never mix', () => {
    const { sender, send } = setup({
      groups: [
        group('r', G, { staticMembers: ['10.0.0.2'] }),
        { ...group('b', G, { staticMembers: ['10.0.0.3'] }), network: 'blue' },
      ],
    });
    expect(send(sender(101), v4(1, G, GMAC))).toEqual(['n2/102']);
    expect(send(sender(201), v4(1, G, GMAC, 'blue'))).toEqual(['n3/203']);
  });
});

describe('nested groups', () => {
  it('a wide diamond is expanded once per group', () => {
    const layers = 8;
    const width = 30;
    const gs: GroupSpec[] = [];
    for (let l = 0; l < layers; l++) {
      for (let w = 0; w < width; w++)
        gs.push(
          group(`l${l}w${w}`, `239.1.${l}.${w}`, {
            nestedGroups: l < layers - 1 ? Array.from({ length: width }, (_, x) => `l${l + 1}w${x}`) : [],
          }),
        );
    }
    const { resolver, sender } = setup({
      groups: gs.map((g) => (g.name === 'l7w3' ? { ...g, staticMembers: ['10.0.0.2'] } : g)),
    });
    const r = resolver.resolveGroup(sender(101), '239.1.0.0', '10.0.0.1');
    expect(r.ok && targets(r.value)).toEqual(['n2/102']);
  });
});

describe('receive, anti-spoofing, ARP', () => {
  it('delivers only to listed local endpoints of the datagram network, each once', () => {
    const { index } = setup();
    const r = receiveTargets(index, 1, [101, 104, 201, 999, 104, 102]);
    expect(r.deliver.map((e) => e.endpointId)).toEqual([101, 104]);
    expect(r).toMatchObject({ unknownIds: 3, duplicateIds: 1, networkKnown: true });
    expect(receiveTargets(index, 7, [101])).toMatchObject({
      deliver: [],
      unknownIds: 1,
      networkKnown: false,
    });
  });

  it('rejects frames whose source MAC or IP is not the endpoint’s', () => {
    const { sender } = setup();
    expect(checkSource(sender(101), parsed(v4(1, G2, '01:00:5e:01:01:01')))).toBeUndefined();
    expect(checkSource(sender(104), parsed(v4(1, G2, '01:00:5e:01:01:01')))?.code).toBe('spoofed-mac');
    const f = v4(1, G2, '01:00:5e:01:01:01');
    f[14 + 15] = 7; // source 10.0.0.7
    expect(checkSource(sender(101), parsed(f))?.code).toBe('spoofed-ip');
  });

  /** A neighbour discovery message from endpoint 101 (fd00::1, 02:00:00:00:01:01) to all nodes. */
  const nd = (type: number, o: { target?: string; lla?: string; src?: string } = {}): ParsedFrame =>
    parsed(
      ndpFrame({
        type,
        srcMac: '02:00:00:00:01:01',
        dstMac: '33:33:00:00:00:01',
        src: o.src ?? 'fd00::1',
        dst: 'ff02::1',
        ...(o.target !== undefined ? { target: o.target } : {}),
        ...(o.lla !== undefined ? { lla: [o.lla] } : {}),
      }),
    );

  it('holds neighbour discovery to the rule ARP is held to, and drops router advertisements', () => {
    const { sender } = setup();
    const own = '02:00:00:00:01:01';
    const error = (f: ParsedFrame) => {
      const e = checkSource(sender(101), f);
      return e && `${e.code} ${e.field}`;
    };
    // Its own address, its link-local, with or without its MAC as the option: fine.
    expect(error(nd(ICMPV6_NEIGHBOR_ADVERT, { target: 'fd00::1', lla: own }))).toBeUndefined();
    expect(error(nd(ICMPV6_NEIGHBOR_ADVERT, { target: 'fe80::1', src: 'fe80::1' }))).toBeUndefined();
    expect(error(nd(ICMPV6_NEIGHBOR_SOLICIT, { target: 'fd00::5', lla: own }))).toBeUndefined();
    // Another endpoint's address as the target, or another MAC in the option: poisoning.
    expect(error(nd(ICMPV6_NEIGHBOR_ADVERT, { target: 'fd00::5', lla: own }))).toBe('spoofed-ip ndp.target');
    expect(error(nd(ICMPV6_NEIGHBOR_ADVERT, { target: 'fd00::1', lla: '02:00:00:00:01:05' }))).toBe(
      'spoofed-mac ndp.link_layer_address',
    );
    expect(error(nd(ICMPV6_NEIGHBOR_SOLICIT, { target: 'fd00::5', lla: '02:00:00:00:01:05' }))).toBe(
      'spoofed-mac ndp.link_layer_address',
    );
    // An endpoint is no router.
    expect(error(nd(ICMPV6_ROUTER_ADVERT, { src: 'fe80::1' }))).toBe('rogue-router icmpv6.type');
    expect(error(nd(ICMPV6_REDIRECT, { target: 'fd00::5', src: 'fe80::1' }))).toBe(
      'rogue-router icmpv6.type',
    );
    expect(error(nd(ICMPV6_ROUTER_SOLICIT, { src: 'fe80::1' }))).toBeUndefined();
  });

  it('answers ARP for known targets of the same network only', () => {
    const { index, sender } = setup();
    const arp = {
      op: 1,
      senderMac: '02:00:00:00:01:01',
      senderIp: '10.0.0.1',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.0.0.5',
    };
    expect(arpTarget(index, sender(101), arp)?.mac).toBe('02:00:00:00:01:05');
    expect(arpTarget(index, sender(101), { ...arp, targetIp: '10.0.0.50' })).toBeUndefined();
    expect(arpTarget(index, sender(101), { ...arp, targetIp: '10.0.0.1' })).toBeUndefined();
    // A network with arpProxy off leaves ARP to the endpoints (it is broadcast like any other).
    const off = setup({ networks: [{ ...net('red', 1), arpProxy: false }, net('blue', 2)] });
    expect(arpTarget(off.index, off.sender(101), arp)).toBeUndefined();
  });
});
const G2 = '239.9.9.9';

describe('properties', () => {
  it('never throws on arbitrary or mutated frames from an endpoint', () => {
    const { index, resolver, sender } = setup({
      memberships: [member('red', '239.1.1.1', 'n2', 102)],
      groups: [
        group('g', '239.1.1.1', { nestedGroups: ['h'] }),
        group('h', '239.1.1.2', { staticMembers: ['239.1.1.1'] }),
      ],
    });
    const seeds = [v4(1, '239.1.1.1', '01:00:5e:01:01:01'), v4(1, '10.0.0.255', 'ff:ff:ff:ff:ff:ff')];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 10 }),
        fc.boolean(),
        (seed, muts, loopback) => {
          const b = Uint8Array.from(seed);
          for (const [i, v] of muts) b[i % b.length] = v;
          const f = parseFrame(b);
          if (!f.ok) return;
          checkSource(sender(101), f.value);
          if (f.value.arp) arpTarget(index, sender(101), f.value.arp);
          const r = resolver.resolveFrame(sender(101), f.value, b, { loopback });
          if (!r.ok) return void expect(r.error.field).toBeTruthy();
          for (const t of targets(r.value)) {
            const [node, id] = t.split('/');
            expect(index.endpointOn(node, Number(id))?.network.spec.name).toBe('red');
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  const groupAddrs = ['239.0.0.1', '239.0.0.2', '239.0.0.3', '232.0.0.1'];
  const sources = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
  const arbDirectory = fc
    .record({
      endpoints: fc.uniqueArray(
        fc.record({
          network: fc.constantFrom('red', 'blue'),
          node: fc.constantFrom('n1', 'n2', 'n3', 'gone'),
          host: fc.integer({ min: 1, max: 30 }),
        }),
        {
          selector: (e) => `${e.network}/${e.host}`,
          maxLength: 25,
        },
      ),
      memberships: fc.array(
        fc.record({
          pick: fc.nat(),
          group: fc.constantFrom(...groupAddrs),
          mode: fc.constantFrom('include' as const, 'exclude' as const),
          sources: fc.subarray(sources),
        }),
        { maxLength: 30 },
      ),
      groups: fc.array(
        fc.record({
          address: fc.constantFrom(...groupAddrs),
          network: fc.constantFrom('red', 'blue'),
          members: fc.subarray([...groupAddrs, '10.0.0.1', '10.0.0.2', '10.0.0.7', '02:00:00:00:01:03']),
          nested: fc.subarray(['g0', 'g1', 'g2']),
          allowed: fc.oneof(fc.constant([] as string[]), fc.subarray(sources)),
        }),
        { maxLength: 3 },
      ),
    })
    .map(({ endpoints, memberships, groups }) => {
      const eps = endpoints.map((e) =>
        ep(e.network, e.node, (e.network === 'red' ? 100 : 200) + e.host, e.host),
      );
      const d: Directory = {
        networks: [net('red', 1), net('blue', 2)],
        nodes,
        endpoints: eps,
        groups: groups.map((g, i) =>
          group(`g${i}`, g.address, {
            network: g.network,
            staticMembers: g.members,
            nestedGroups: g.nested,
            allowedSources: g.allowed,
          }),
        ),
        memberships:
          eps.length === 0
            ? []
            : memberships.map((m) =>
                member(
                  eps[m.pick % eps.length].network,
                  m.group,
                  eps[m.pick % eps.length].node,
                  eps[m.pick % eps.length].endpointId,
                  m.mode,
                  m.sources,
                ),
              ),
      };
      return d;
    });

  it('every result is exactly-once, without the sender, inside the sender’s network, and terminates on cycles', () => {
    fc.assert(
      fc.property(
        arbDirectory,
        fc.constantFrom(...groupAddrs),
        fc.constantFrom(...sources),
        fc.boolean(),
        (d, g, src, loopback) => {
          const index = buildIndex(d, 'n1');
          const resolver = new Resolver(index);
          for (const sender of index.endpoints.filter((e) => e.node === 'n1')) {
            const r = resolver.resolveGroup(sender, g, src, { loopback });
            if (!r.ok) {
              expect(['group-cycle', 'group-too-deep']).toContain(r.error.code);
              continue;
            }
            const t = targets(r.value);
            expect(new Set(t).size).toBe(t.length);
            if (!loopback) expect(t).not.toContain(`n1/${sender.endpointId}`);
            for (const x of t) {
              const [node, id] = x.split('/');
              expect(index.endpointOn(node, Number(id))!.network).toBe(sender.network);
            }
            expect(r.value.remote.every((b) => b.node.name !== 'n1' && b.endpointIds.length > 0)).toBe(true);
            // Memberships alone: exactly the members whose filter admits the source.
            if (d.groups.length === 0) {
              const want = d.memberships
                .filter((m) => m.network === sender.network.spec.name && m.group === g)
                .filter((m) =>
                  m.filter.mode === 'include'
                    ? m.filter.sources.includes(src)
                    : !g.startsWith('232.') && !m.filter.sources.includes(src),
                )
                .filter((m) => loopback || m.endpointId !== sender.endpointId)
                .filter((m) => m.node !== 'gone')
                .map((m) => `${m.node}/${m.endpointId}`);
              expect(t).toEqual([...new Set(want)].sort());
            }
            // Cached answers equal fresh ones.
            const again = new Resolver(index).resolveGroup(sender, g, src, { loopback });
            expect(again).toEqual(r);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
