// Per-endpoint rate limits: classification from raw bytes, token buckets per endpoint and kind, the
// network's settings over the defaults, and decideLocalFrame dropping a flood before it is resolved
// while another endpoint's frames still go through.
import { buildArpReply, buildIPv4Frame } from '../../frame/build.js';
import { VNET_HDR_LEN } from '../../frame/vnet.js';
import { LIMITS } from '../../lookup/limits.js';
import type { Directory, RateLimits } from '../../lookup/port.js';
import { buildIndex, Resolver } from '../../resolve/index.js';
import { ep, macOf } from '../../../test/harness/endpoint-records.js';
import { decideLocalFrame } from './forward.js';
import { classifyFrame, effectiveRate, Policer } from './policer.js';

const vnet = (frame: Uint8Array): Uint8Array => {
  const out = new Uint8Array(VNET_HDR_LEN + frame.length);
  out.set(frame, VNET_HDR_LEN);
  return out;
};

const udp = (host: number, dst: string, dstMac: string) =>
  vnet(
    buildIPv4Frame({
      dstMac,
      srcMac: macOf(host),
      src: `10.0.0.${host}`,
      dst,
      protocol: 17,
      ttl: 1,
      payload: Buffer.from([0x9c, 0x40, 0x13, 0x88, 0, 12, 0, 0, 1, 2, 3, 4]),
    }),
  );
const broadcast = (host: number) => udp(host, '10.0.0.255', 'ff:ff:ff:ff:ff:ff');
const multicast = (host: number) => udp(host, '239.1.1.1', '01:00:5e:01:01:01');
/** A broadcast ARP from `host` asking for `target` (built as the reply to a request from ff:..:ff). */
const arpRequest = (host: number, target: string) =>
  vnet(
    buildArpReply(
      {
        op: 1,
        senderMac: 'ff:ff:ff:ff:ff:ff',
        senderIp: target,
        targetMac: '00:00:00:00:00:00',
        targetIp: `10.0.0.${host}`,
      },
      macOf(host),
    ),
  );

describe('classifyFrame', () => {
  it('tells ARP, broadcast and multicast apart from the raw bytes, and leaves unicast and runts alone', () => {
    expect(classifyFrame(broadcast(1))).toBe('broadcast');
    expect(classifyFrame(multicast(1))).toBe('multicast');
    expect(classifyFrame(arpRequest(1, '10.0.0.9'))).toBe('arp');
    expect(classifyFrame(udp(1, '10.0.0.2', macOf(2)))).toBeUndefined();
    expect(classifyFrame(broadcast(1).subarray(0, VNET_HDR_LEN + 13))).toBeUndefined();
  });

  it('finds ARP behind VLAN tags', () => {
    const plain = arpRequest(1, '10.0.0.9');
    const e = VNET_HDR_LEN + 12;
    const tagged = new Uint8Array(plain.length + 8);
    tagged.set(plain.subarray(0, e));
    tagged.set([0x88, 0xa8, 0, 5, 0x81, 0x00, 0, 7], e);
    tagged.set(plain.subarray(e), e + 8);
    expect(classifyFrame(tagged)).toBe('arp');
  });
});

describe('Policer', () => {
  const limits: RateLimits = { broadcast: { packetsPerSecond: 100, burst: 10 } };

  it('admits the burst, then the sustained rate, per endpoint and per kind', () => {
    const p = new Policer();
    const admitted = (id: number, n: number, at: number) =>
      Array.from({ length: n }, () => p.admit(id, 'broadcast', limits, at)).filter(Boolean).length;
    expect(admitted(1, 50, 0)).toBe(10);
    // 100/s: 50 ms refills 5 tokens, and idle time never earns more than the burst.
    expect(admitted(1, 50, 50)).toBe(5);
    expect(admitted(1, 50, 10_000)).toBe(10);
    // Another endpoint, and another kind of the same endpoint, have their own buckets.
    expect(admitted(2, 50, 10_000)).toBe(10);
    expect(p.admit(1, 'multicast', limits, 10_000)).toBe(true);
    // A clock that steps back refills nothing.
    expect(admitted(1, 5, 0)).toBe(0);
  });

  it('takes the defaults for what the network leaves out, and forgets an endpoint', () => {
    expect(effectiveRate(limits, 'arp')).toEqual({
      packetsPerSecond: LIMITS.arpPpsDefault,
      burst: LIMITS.arpBurstDefault,
    });
    expect(effectiveRate({ arp: { burst: 3 } }, 'arp')).toEqual({
      packetsPerSecond: LIMITS.arpPpsDefault,
      burst: 3,
    });
    const p = new Policer();
    for (let id = 1; id <= 100; id++) p.admit(id, 'arp', undefined, 0);
    expect(p.size).toBe(100);
    for (let id = 1; id <= 100; id++) p.forget(id);
    expect(p.size).toBe(0);
  });
});

describe('decideLocalFrame with rate limits', () => {
  const d: Directory = {
    networks: [
      {
        name: 'red',
        id: 1,
        subnets: ['10.0.0.0/24'],
        mtu: 1400,
        multicast: true,
        broadcast: true,
        arpProxy: false,
        rateLimits: {
          broadcast: { packetsPerSecond: 10, burst: 5 },
          arp: { packetsPerSecond: 10, burst: 2 },
        },
      },
    ],
    nodes: ['n1', 'n2'].map((name, i) => ({ name, address: `192.0.2.${i + 1}`, port: 4790, poolIndex: i })),
    endpoints: [ep('n1', 1, 1), ep('n1', 2, 2), ep('n2', 3, 3)],
    groups: [],
    memberships: [],
  };
  const resolver = new Resolver(buildIndex(d, 'n1'));
  const sender = (id: number) => resolver.index.localEndpoint(id);

  it('drops a broadcast and ARP flood past the burst, counted by kind, while others still forward', () => {
    const policing = { policer: new Policer(), nowMs: 1000 };
    const kinds = Array.from({ length: 100 }, () =>
      decideLocalFrame(resolver, sender(1), broadcast(1), policing),
    );
    expect(kinds.filter((a) => a.kind === 'forward')).toHaveLength(5);
    expect(kinds.filter((a) => a.kind === 'drop' && a.policed === 'broadcast')).toHaveLength(95);
    const arps = Array.from({ length: 10 }, () =>
      decideLocalFrame(resolver, sender(1), arpRequest(1, '10.0.0.50'), policing),
    );
    expect(arps.filter((a) => a.kind === 'drop' && a.reason === 'policed:arp')).toHaveLength(8);
    // Endpoint 2's broadcast and endpoint 1's multicast are not held back by endpoint 1's flood.
    const b2 = decideLocalFrame(resolver, sender(2), broadcast(2), policing);
    expect(b2.kind === 'forward' && b2.delivery.local).toEqual([1]);
    expect(decideLocalFrame(resolver, sender(1), multicast(1), policing)).toEqual({
      kind: 'drop',
      reason: 'no-members',
    });
    // A second later, 10 more.
    const later = { ...policing, nowMs: 2000 };
    const again = Array.from({ length: 20 }, () =>
      decideLocalFrame(resolver, sender(1), broadcast(1), later),
    );
    expect(again.filter((a) => a.kind === 'forward')).toHaveLength(5);
  });

  it('polices nothing without a policer (the lab tools and the resolver tests)', () => {
    for (let i = 0; i < 100; i++)
      expect(decideLocalFrame(resolver, sender(1), broadcast(1)).kind).toBe('forward');
  });
});
