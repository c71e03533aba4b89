import fc from 'fast-check';
import {
  buildArpReply,
  buildIPv4Frame,
  buildIPv6Frame,
  classifyDestination,
  ICMPV6_NEIGHBOR_ADVERT,
  IPPROTO_ICMPV6,
  IPPROTO_IGMP,
  IPPROTO_UDP,
  parseFrame,
  verifiesChecksum,
  ipv6PseudoHeaderSum,
  ETH_P_ARP,
  writeEthernetHeader,
  VNET_HDR_LEN,
  type ParsedFrame,
} from './index.js';
import { formatIPv4, parseAddress, parseIPv6, parseMac } from '../netaddr/address.js';
import { ndpFrame } from '../../test/harness/ndp.js';
import { encodeVnetHeader, parseVnetHeader } from '../../test/harness/vnet.js';
import { mldFrame } from '../../test/fixtures/igmp-reports.js';

function parsed(b: Uint8Array, off = 0): ParsedFrame {
  const r = parseFrame(b, off);
  if (!r.ok) throw new Error(`parse failed: ${r.error.field}: ${r.error.reason}`);
  return r.value;
}

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';

describe('parseFrame', () => {
  it('reads a VLAN-tagged IGMP packet with Router Alert', () => {
    const f = buildIPv4Frame({
      dstMac: '01:00:5e:00:00:16',
      srcMac: MAC_A,
      src: '10.0.0.5',
      dst: '224.0.0.22',
      protocol: IPPROTO_IGMP,
      ttl: 1,
      routerAlert: true,
      payload: new Uint8Array(16),
      vlans: [100],
    });
    const p = parsed(f);
    expect(p).toMatchObject({
      dstMac: '01:00:5e:00:00:16',
      srcMac: MAC_A,
      groupMac: true,
      vlans: [100],
      kind: 'igmp',
    });
    expect(p.ip).toMatchObject({
      version: 4,
      src: '10.0.0.5',
      dst: '224.0.0.22',
      ttl: 1,
      routerAlert: true,
      payloadLength: 16,
    });
    expect(verifiesChecksum(f, p.ip!.headerOffset, p.ip!.payloadOffset)).toBe(true);
  });

  it('finds MLD behind the hop-by-hop header and verifies the ICMPv6 checksum', () => {
    const payload = Uint8Array.from([143, 0, 0, 0, 0, 0, 0, 0]);
    const f = mldFrame(payload, 'fe80::1', MAC_A);
    const p = parsed(f);
    expect(p.kind).toBe('mld');
    expect(p.ip).toMatchObject({
      version: 6,
      protocol: IPPROTO_ICMPV6,
      routerAlert: true,
      ttl: 1,
      payloadLength: 8,
    });
    const ip = p.ip!;
    const pseudo = ipv6PseudoHeaderSum(f, ip.srcOffset, f, ip.dstOffset, ip.payloadLength, IPPROTO_ICMPV6);
    expect(verifiesChecksum(f, ip.payloadOffset, ip.payloadOffset + ip.payloadLength, pseudo)).toBe(true);
  });

  it('refuses neighbour discovery that stacks would read differently: two link-layer options, or fragmented', () => {
    const MAC_B = '02:00:00:00:00:0b';
    const spec = {
      type: ICMPV6_NEIGHBOR_ADVERT,
      srcMac: MAC_A,
      dstMac: '33:33:00:00:00:01',
      src: 'fd00::1',
      dst: 'ff02::1',
      target: 'fd00::1',
    };
    const na = (lla: string[]) => parseFrame(ndpFrame({ ...spec, lla }));
    expect(na([MAC_A, MAC_A]).ok).toBe(true);
    const two = na([MAC_B, MAC_A]);
    expect(!two.ok && `${two.error.code} ${two.error.field}`).toBe('bad-header ndp.option');
    // The same advertisement as the first fragment of two (a fragment header in front of ICMPv6).
    const whole = ndpFrame(spec);
    const frag = new Uint8Array(whole.length + 8);
    frag.set(whole.subarray(0, 54), 0);
    frag[14 + 6] = 44; // next header: fragment
    frag[14 + 5] += 8; // payload length
    frag.set([58, 0, 0, 1, 0, 0, 0, 1], 54); // ICMPv6 follows; offset 0, more fragments
    frag.set(whole.subarray(54), 62);
    const fragmented = parseFrame(frag);
    expect(!fragmented.ok && `${fragmented.error.code} ${fragmented.error.field}`).toBe(
      'fragmented-ndp ipv6.fragment',
    );
  });

  it('reads neighbour solicitations with their source link-layer option', () => {
    const ns = new Uint8Array(32);
    ns[0] = 135;
    ns.set(parseIPv6('fd00::2')!, 8);
    ns.set([1, 1], 24);
    ns.set(parseMac(MAC_A)!, 26);
    const f = buildIPv6Frame({
      dstMac: '33:33:ff:00:00:02',
      srcMac: MAC_A,
      src: 'fd00::1',
      dst: 'ff02::1:ff00:2',
      nextHeader: IPPROTO_ICMPV6,
      hopLimit: 255,
      payload: ns,
    });
    const p = parsed(f);
    expect(p.kind).toBe('ndp');
    expect(p.ndp).toEqual({ type: 135, target: 'fd00::2', linkLayerAddress: MAC_A });
    expect(classifyDestination(p, f, new Set())).toBe('link-local-multicast');
  });

  it('answers an ARP request with a reply the requester accepts', () => {
    const req = new Uint8Array(42);
    const o = writeEthernetHeader(req, parseMac('ff:ff:ff:ff:ff:ff')!, parseMac(MAC_A)!, ETH_P_ARP);
    req.set([0, 1, 8, 0, 6, 4, 0, 1], o);
    req.set(parseMac(MAC_A)!, o + 8);
    req.set([10, 0, 0, 1], o + 14);
    req.set([10, 0, 0, 2], o + 24);
    const p = parsed(req);
    expect(p.arp).toEqual({
      op: 1,
      senderMac: MAC_A,
      senderIp: '10.0.0.1',
      targetMac: '00:00:00:00:00:00',
      targetIp: '10.0.0.2',
    });
    expect(classifyDestination(p, req, new Set())).toBe('broadcast');
    const reply = parsed(buildArpReply(p.arp!, MAC_B));
    expect(reply).toMatchObject({ dstMac: MAC_A, srcMac: MAC_B, groupMac: false });
    expect(reply.arp).toEqual({
      op: 2,
      senderMac: MAC_B,
      senderIp: '10.0.0.2',
      targetMac: MAC_A,
      targetIp: '10.0.0.1',
    });
  });

  it('parses frames behind a virtio-net header', () => {
    const f = buildIPv4Frame({
      dstMac: MAC_B,
      srcMac: MAC_A,
      src: '10.0.0.1',
      dst: '10.0.0.2',
      protocol: IPPROTO_UDP,
      ttl: 64,
      payload: new Uint8Array(8),
    });
    const vh = { flags: 1, gsoType: 0, hdrLen: 42, gsoSize: 0, csumStart: 34, csumOffset: 6 };
    const buf = new Uint8Array(VNET_HDR_LEN + f.length);
    encodeVnetHeader(vh, buf);
    buf.set(f, VNET_HDR_LEN);
    const h = parseVnetHeader(buf);
    expect(h.ok && h.value).toEqual(vh);
    expect(parsed(buf, VNET_HDR_LEN).ip?.dst).toBe('10.0.0.2');
    expect(parseVnetHeader(buf.subarray(0, 9)).ok).toBe(false);
  });

  it('returns a named error, never throws, for every truncation of a valid frame', () => {
    const f = mldFrame(new Uint8Array(28).fill(7), 'fe80::1', MAC_A);
    for (let n = 0; n < f.length; n++) {
      const r = parseFrame(f.subarray(0, n));
      if (n < 14 + 40 + 8 + 28) {
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.error.field).toBeTruthy();
      }
    }
  });

  it('never throws on arbitrary or mutated bytes', () => {
    const seeds = [
      buildIPv4Frame({
        dstMac: '01:00:5e:00:00:01',
        srcMac: MAC_A,
        src: '1.2.3.4',
        dst: '224.0.0.1',
        protocol: 2,
        ttl: 1,
        routerAlert: true,
        payload: new Uint8Array(12),
      }),
      buildIPv6Frame({
        dstMac: '33:33:00:00:00:01',
        srcMac: MAC_A,
        src: 'fe80::1',
        dst: 'ff02::1',
        nextHeader: 58,
        hopLimit: 1,
        routerAlert: true,
        payload: new Uint8Array(24),
      }),
    ];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc
            .tuple(
              fc.constantFrom(...seeds),
              fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
            )
            .map(([s, muts]) => {
              const c = Uint8Array.from(s);
              for (const [i, v] of muts) c[i % c.length] = v;
              return c;
            }),
        ),
        (b) => {
          const r = parseFrame(b);
          if (r.ok && r.value.ip)
            expect(r.value.ip.payloadOffset + r.value.ip.payloadLength).toBeLessThanOrEqual(b.length);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('classifyDestination', () => {
  const v4 = (dst: string, dstMac: string) =>
    buildIPv4Frame({
      dstMac,
      srcMac: MAC_A,
      src: '10.0.0.1',
      dst,
      protocol: IPPROTO_UDP,
      ttl: 1,
      payload: new Uint8Array(8),
    });
  const v6 = (dst: string, dstMac: string) =>
    buildIPv6Frame({
      dstMac,
      srcMac: MAC_A,
      src: 'fd00::1',
      dst,
      nextHeader: IPPROTO_UDP,
      hopLimit: 1,
      payload: new Uint8Array(8),
    });
  const cls = (f: Uint8Array) => classifyDestination(parsed(f), f, new Set(['10.0.0.255']));
  it.each([
    ['unicast MAC', v4('10.0.0.2', MAC_B), 'unicast'],
    ['limited broadcast', v4('255.255.255.255', 'ff:ff:ff:ff:ff:ff'), 'broadcast'],
    ['subnet broadcast', v4('10.0.0.255', 'ff:ff:ff:ff:ff:ff'), 'broadcast'],
    ['224.0.0.251 (mDNS)', v4('224.0.0.251', '01:00:5e:00:00:fb'), 'link-local-multicast'],
    ['239.1.2.3', v4('239.1.2.3', '01:00:5e:01:02:03'), 'ipv4-multicast'],
    ['232.1.1.1 (SSM)', v4('232.1.1.1', '01:00:5e:01:01:01'), 'ipv4-multicast'],
    ['ff02::1', v6('ff02::1', '33:33:00:00:00:01'), 'link-local-multicast'],
    ['ff05::2', v6('ff05::2', '33:33:00:00:00:02'), 'ipv6-multicast'],
    ['unicast IP to broadcast MAC', v4('10.0.0.9', 'ff:ff:ff:ff:ff:ff'), 'broadcast'],
  ])('%s', (_name, f, want) => expect(cls(f)).toBe(want));
  it('non-IP multicast MAC', () => {
    const f = new Uint8Array(60);
    writeEthernetHeader(f, parseMac('01:80:c2:00:00:0e')!, parseMac(MAC_A)!, 0x88cc);
    expect(cls(f)).toBe('non-ip-multicast');
  });
  it('formats IPv4 from bytes', () => expect(formatIPv4(Uint8Array.of(1, 2, 3, 4))).toBe('1.2.3.4'));
});

describe('IPv6 text with an IPv4 tail', () => {
  it('accepts a dotted quad only at the end of the whole address', () => {
    // RFC 4291 2.2 (3): the dotted quad is the low-order 32 bits.
    expect(parseIPv6('::ffff:1.2.3.4')).toEqual(
      Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4),
    );
    expect(parseIPv6('64:ff9b::192.0.2.1')).toEqual(
      Uint8Array.of(0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1),
    );
    expect(parseIPv6('1.2.3.4::')).toBeUndefined();
    expect(parseIPv6('43.103.3.1::2')).toBeUndefined();
    expect(parseAddress('1.2.3.4::')).toBeUndefined();
  });
});
