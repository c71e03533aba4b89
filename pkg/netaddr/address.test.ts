import fc from 'fast-check';
import { canonicalAddress, formatIPv6, isSsmGroup, parseAddress, parseIPv6 } from './address.js';

describe('addresses', () => {
  it('formats IPv6 as RFC 5952 text that WHATWG URL agrees with, and parses it back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (raw, sparse) => {
        const b = sparse ? raw.map((x, i) => (i % 4 < 2 ? 0 : x)) : raw;
        const text = formatIPv6(b);
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
        expect(parseIPv6(text)).toEqual(b);
      }),
    );
  });

  it('canonicalises every spelling of an address to one string', () => {
    expect(canonicalAddress('FF02:0:0:0:0:0:0:1')).toBe('ff02::1');
    expect(canonicalAddress('2001:db8::0:1')).toBe('2001:db8::1');
    expect(canonicalAddress('::ffff:10.0.0.1')).toBe('::ffff:a00:1');
    expect(canonicalAddress('AA-BB-CC-00-11-22')).toBe('aa:bb:cc:00:11:22');
    expect(canonicalAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(parseAddress('010.0.0.1')).toBeUndefined();
    expect(parseAddress('1:2:3:4:5:6:7:8:9')).toBeUndefined();
    expect(parseAddress('1::2::3')).toBeUndefined();
    expect(parseAddress('256.0.0.1')).toBeUndefined();
  });

  it('never throws on arbitrary strings', () => {
    fc.assert(fc.property(fc.string(), (s) => void parseAddress(s)));
  });

  it('knows the SSM ranges', () => {
    expect(isSsmGroup('232.1.1.1')).toBe(true);
    expect(isSsmGroup('239.1.1.1')).toBe(false);
    expect(isSsmGroup('ff3e::8000:1')).toBe(true);
    expect(isSsmGroup('ff3e:1::1')).toBe(false);
    expect(isSsmGroup('ff0e::1')).toBe(false);
  });
});
