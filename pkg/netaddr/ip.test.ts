import fc from 'fast-check';
import {
  contains,
  formatCidr,
  formatIp,
  ipFromBytes,
  ipToBytes,
  lastOf,
  networkOf,
  parseCidr,
  parseIp,
  subnetBroadcast,
} from './ip.js';
import { macBytes, normalizeUnicastMac, randomLocalMac } from './mac.js';

describe('IP addresses', () => {
  it.each([
    ['10.1.2.3', 4, 0x0a010203n],
    ['::', 6, 0n],
    ['::1', 6, 1n],
    ['fd44::101', 6, (0xfd44n << 112n) | 0x101n],
    ['::ffff:1.2.3.4', 6, (0xffffn << 32n) | 0x01020304n],
    ['2001:db8:0:0:1:0:0:1', 6, (0x20010db8n << 96n) | (1n << 48n) | 1n],
  ])('parses %s', (text, family, value) => {
    expect(parseIp(text)).toEqual({ family, value });
  });

  it.each(['', '1.2.3', '256.0.0.1', 'fe80::1%eth0', '1::2::3', 'x'])('rejects %j naming it', (text) => {
    expect(() => parseIp(text)).toThrow(`${JSON.stringify(text)} is not an IP address`);
  });

  it.each([
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['fd00:0:0:1::', 'fd00:0:0:1::'],
    ['1:0:1:0:1:0:1:0', '1:0:1:0:1:0:1:0'],
  ])('formats %s in RFC 5952 form as %s', (text, want) => {
    expect(formatIp(parseIp(text))).toBe(want);
  });

  it('round-trips any address through text and bytes', () => {
    const v4 = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }).map((value) => ({ family: 4 as const, value }));
    const v6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map((value) => ({ family: 6 as const, value }));
    fc.assert(
      fc.property(fc.oneof(v4, v6), (ip) => {
        expect(parseIp(formatIp(ip))).toEqual(ip);
        expect(ipFromBytes(ipToBytes(ip))).toEqual(ip);
      }),
    );
  });

  it('parses prefixes and computes network, last address and containment', () => {
    const c = parseCidr('10.44.7.9/16');
    expect(formatIp(networkOf(c))).toBe('10.44.0.0');
    expect(formatIp(lastOf(c))).toBe('10.44.255.255');
    expect(contains(c, parseIp('10.44.200.1'))).toBe(true);
    expect(contains(c, parseIp('10.45.0.1'))).toBe(false);
    expect(contains(c, parseIp('::1'))).toBe(false);
    expect(formatCidr(parseCidr('fd44::0101/64'))).toBe('fd44::101/64');
    expect(() => parseCidr('10.0.0.0')).toThrow(/missing \/prefix/);
    expect(() => parseCidr('10.0.0.0/33')).toThrow(/prefix must be 0..32/);
    expect(() => parseCidr('fd00::/129')).toThrow(/prefix must be 0..128/);
  });
});

describe('MAC addresses', () => {
  it('parses and normalizes unicast MACs, refusing malformed, multicast and zero ones', () => {
    expect(macBytes('02:AA:bb:00:01:ff')).toEqual(Buffer.from([2, 0xaa, 0xbb, 0, 1, 0xff]));
    expect(normalizeUnicastMac('02:AA:BB:CC:DD:EE')).toBe('02:aa:bb:cc:dd:ee');
    expect(() => normalizeUnicastMac('02:aa:bb:cc:dd')).toThrow(/is not a MAC address/);
    expect(() => normalizeUnicastMac('01:00:5e:00:00:01')).toThrow(/multicast/);
    expect(() => normalizeUnicastMac('00:00:00:00:00:00')).toThrow(/all-zero/);
  });

  it('generates locally administered unicast MACs', () => {
    for (let i = 0; i < 50; i++) {
      const b = macBytes(randomLocalMac());
      expect(b[0] & 0x03).toBe(0x02);
    }
  });
});

describe('subnets', () => {
  it('computes membership and the IPv4 directed broadcast', () => {
    const c = parseCidr('10.1.2.0/23');
    expect(subnetBroadcast(c)).toBe('10.1.3.255');
    expect(contains(c, parseIp('10.1.3.7'))).toBe(true);
    expect(contains(c, parseIp('10.1.4.7'))).toBe(false);
    expect(subnetBroadcast(parseCidr('10.0.0.0/31'))).toBeUndefined();
    expect(subnetBroadcast(parseCidr('fd00::/64'))).toBeUndefined();
    expect(() => parseCidr('10.0.0.0/33')).toThrow('prefix must be 0..32');
  });
});
