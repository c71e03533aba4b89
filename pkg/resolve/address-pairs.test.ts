import { buildArpReply, buildIPv4Frame, parseFrame, type ParsedFrame } from '../frame/index.js';
import { ep, macOf, VIP } from '../../test/harness/endpoint-records.js';
import type { Directory, EndpointRecord } from '../lookup/port.js';
import { addressHolders, announcedAddress, arpTarget, buildIndex, checkSource, holds } from './index.js';

const directory = (endpoints: EndpointRecord[]): Directory => ({
  networks: [{ name: 'red', id: 1, subnets: ['10.0.0.0/24'], mtu: 1400, multicast: true, broadcast: true }],
  nodes: ['n1', 'n2', 'n3'].map((name, i) => ({
    name,
    address: `192.0.2.${i + 1}`,
    port: 4790,
    poolIndex: i,
  })),
  endpoints,
  groups: [],
  memberships: [],
});

/** A gratuitous ARP (a broadcast reply whose sender and target are `ip`), as keepalived sends. */
function garp(host: number, ip: string): ParsedFrame {
  const request = {
    op: 1,
    senderMac: 'ff:ff:ff:ff:ff:ff',
    senderIp: ip,
    targetMac: '00:00:00:00:00:00',
    targetIp: ip,
  };
  const r = parseFrame(buildArpReply(request, macOf(host)), 0);
  if (!r.ok) throw new Error(`${r.error.field}: ${r.error.reason}`);
  return r.value;
}

function udpFrom(host: number, src: string): ParsedFrame {
  const r = parseFrame(
    buildIPv4Frame({
      dstMac: 'ff:ff:ff:ff:ff:ff',
      srcMac: macOf(host),
      src,
      dst: '10.0.0.255',
      protocol: 17,
      ttl: 1,
      payload: new Uint8Array(8),
    }),
    0,
  );
  if (!r.ok) throw new Error(`${r.error.field}: ${r.error.reason}`);
  return r.value;
}

// Two keepalived pods (hosts 1 and 2) may use the VIP; host 3 is a client that may not.
const pair = { allowedAddresses: [VIP] };

describe('addressHolders', () => {
  it('gives each claimed address to the endpoint that claimed it last', () => {
    const a = ep('n1', 1, 1, { ...pair, claims: [{ address: VIP, at: 1000 }] });
    const b = ep('n2', 2, 2, { ...pair, claims: [{ address: VIP, at: 2000 }] });
    expect(addressHolders([a, b]).get('red')?.get(VIP)).toBe(b);
    expect(addressHolders([b, a]).get('red')?.get(VIP)).toBe(b);
    // No claim yet: nobody holds it (the ARP proxy stays silent, the owner answers itself).
    expect(addressHolders([ep('n1', 1, 1, pair), ep('n2', 2, 2, pair)]).size).toBe(0);
  });

  it('ignores a claim of an address the endpoint was not allowed', () => {
    const rogue = ep('n3', 3, 3, { claims: [{ address: VIP, at: 9000 }] });
    const a = ep('n1', 1, 1, { ...pair, claims: [{ address: VIP, at: 1000 }] });
    expect(addressHolders([a, rogue]).get('red')?.get(VIP)).toBe(a);
  });

  it('breaks a tie the same way on every node', () => {
    const a = ep('n1', 1, 1, { ...pair, claims: [{ address: VIP, at: 1000 }] });
    const b = ep('n2', 2, 2, { ...pair, claims: [{ address: VIP, at: 1000 }] });
    expect(addressHolders([b, a]).get('red')?.get(VIP)).toBe(a);
    expect(addressHolders([a, b]).get('red')?.get(VIP)).toBe(a);
  });
});

describe('the index, anti-spoofing and the ARP proxy with allowed address pairs', () => {
  const setup = (endpoints: EndpointRecord[]) => {
    const index = buildIndex(directory(endpoints), 'n1');
    const by = (id: number) => index.endpoints.find((e) => e.endpointId === id)!;
    return { index, by };
  };

  it('admits a declared address as a source and nothing else', () => {
    const { by } = setup([ep('n1', 1, 1, pair), ep('n1', 3, 3)]);
    expect(checkSource(by(1), udpFrom(1, VIP))).toBeUndefined();
    expect(checkSource(by(1), garp(1, VIP))).toBeUndefined();
    expect(checkSource(by(1), udpFrom(1, '10.0.0.101'))?.code).toBe('spoofed-ip');
    expect(checkSource(by(3), udpFrom(3, VIP))?.code).toBe('spoofed-ip');
    expect(checkSource(by(3), garp(3, VIP))?.code).toBe('spoofed-ip');
  });

  it('answers ARP for a shared address with its current holder, and follows it when it moves', () => {
    const request = {
      op: 1,
      senderMac: macOf(3),
      senderIp: '10.0.0.3',
      targetMac: '00:00:00:00:00:00',
      targetIp: VIP,
    };
    const first = setup([
      ep('n1', 1, 1, { ...pair, claims: [{ address: VIP, at: 1000 }] }),
      ep('n2', 2, 2, pair),
      ep('n1', 3, 3),
    ]);
    expect(arpTarget(first.index, first.by(3), request)?.endpointId).toBe(1);
    expect(holds(first.index, first.by(1), VIP)).toBe(true);
    expect(holds(first.index, first.by(2), VIP)).toBe(false);
    const moved = setup([
      ep('n1', 1, 1, { ...pair, claims: [{ address: VIP, at: 1000 }] }),
      ep('n2', 2, 2, { ...pair, claims: [{ address: VIP, at: 2000 }] }),
      ep('n1', 3, 3),
    ]);
    expect(arpTarget(moved.index, moved.by(3), request)?.endpointId).toBe(2);
    // Nobody has announced it: no proxy answer (the request goes to the endpoints).
    const unclaimed = setup([ep('n1', 1, 1, pair), ep('n2', 2, 2, pair), ep('n1', 3, 3)]);
    expect(arpTarget(unclaimed.index, unclaimed.by(3), request)).toBeUndefined();
  });

  it('never lets a claim take over another endpoint’s own address', () => {
    const own = '10.0.0.3';
    const { index, by } = setup([
      ep('n1', 1, 1, { allowedAddresses: [own], claims: [{ address: own, at: 5000 }] }),
      ep('n1', 3, 3),
    ]);
    expect(index.endpointByAddress('red', own)).toBe(by(3));
    expect(index.problems.map((p) => p.reason)).toContain('claims 10.0.0.3, the address of another endpoint');
  });
});

describe('announcedAddress', () => {
  const allowed = new Set([VIP]);
  it('is the allowed address of a gratuitous ARP', () => {
    expect(announcedAddress(allowed, garp(1, VIP))).toBe(VIP);
  });
  it('is nothing for other frames, or addresses not allowed', () => {
    expect(announcedAddress(allowed, garp(1, '10.0.0.1'))).toBeUndefined();
    expect(announcedAddress(new Set(), garp(1, VIP))).toBeUndefined();
    expect(announcedAddress(allowed, udpFrom(1, VIP))).toBeUndefined();
    const ask = { ...garp(1, VIP) };
    ask.arp = { ...ask.arp!, op: 1, targetIp: '10.0.0.5' };
    expect(announcedAddress(allowed, ask)).toBeUndefined();
  });
  it('is the target of an unsolicited neighbour advertisement', () => {
    const f = { ...udpFrom(1, VIP), arp: undefined, ndp: { type: 136, target: 'fd00::64' } } as ParsedFrame;
    expect(announcedAddress(new Set(['fd00::64']), f)).toBe('fd00::64');
  });
});
