import fc from 'fast-check';
import { SocketAddress } from 'node:net';
import { parseIPv6 } from '../netaddr/address.js';
import { decodeSockaddr, encodeSockaddr, formatIPv6Ntop } from './sockaddr.js';

describe('sockaddr encoding', () => {
  it('round-trips IPv6 addresses to the same text as the system resolver', () => {
    fc.assert(
      fc.property(fc.ipV6(), (addr) => {
        const canonical = new SocketAddress({ address: addr, family: 'ipv6' }).address;
        expect(formatIPv6Ntop(parseIPv6(addr)!)).toBe(canonical);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips (address, port) through the kernel layout', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 65535 }), (addr, port) => {
        const family = addr.includes(':') ? 'ipv6' : 'ipv4';
        const decoded = decodeSockaddr(encodeSockaddr(addr, port));
        expect(decoded).toEqual({ address: new SocketAddress({ address: addr, family }).address, port });
      }),
    );
  });

  it('names the field and the reason for bad input', () => {
    expect(() => encodeSockaddr('10.0.0.300', 1, 'peer address')).toThrow(
      'peer address "10.0.0.300": not an IPv4 or IPv6 address',
    );
    expect(() => encodeSockaddr('fe80::1%eth0', 1)).toThrow(/zones are not supported/);
    expect(() => encodeSockaddr('10.0.0.1', 70000, 'peer address')).toThrow(
      'peer address port 70000: must be an integer in 0..65535',
    );
  });
});
