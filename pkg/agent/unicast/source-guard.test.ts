import { guardEntries, guardSetsBatch, guardTableBatch } from './source-guard.js';

describe('source guard', () => {
  const e = {
    hostIfname: 'cn0123456789a',
    mac: '02:AA:bb:cc:dd:ee',
    ips: ['10.30.0.1/16', 'FD00:0::1/64'],
    allowedAddresses: ['10.40.200.1'],
  };

  it("lists each port's MAC and each address it may send from, with its allowed address pairs", () => {
    expect(guardEntries([e])).toEqual({
      ports: ['"cn0123456789a"'],
      macs: ['"cn0123456789a" . 02:aa:bb:cc:dd:ee'],
      src4: [
        '"cn0123456789a" . 02:aa:bb:cc:dd:ee . 10.30.0.1',
        '"cn0123456789a" . 02:aa:bb:cc:dd:ee . 10.40.200.1',
      ],
      src6: ['"cn0123456789a" . 02:aa:bb:cc:dd:ee . fd00::1'],
      // Raw ICMPv6 payloads: a neighbour advertisement's target, a link-layer address option's MAC.
      nd6: ['"cn0123456789a" . 0xfd000000000000000000000000000001'],
      lladdr: ['"cn0123456789a" . 0x02aabbccddee'],
    });
  });

  it('replaces every set in one batch, empty ones included', () => {
    const batch = guardSetsBatch(guardEntries([{ ...e, ips: ['10.30.0.1/16'], allowedAddresses: [] }]));
    expect(batch.split('\n').filter(Boolean)).toEqual([
      'flush set bridge castnet ports',
      'add element bridge castnet ports { "cn0123456789a" }',
      'flush set bridge castnet macs',
      'add element bridge castnet macs { "cn0123456789a" . 02:aa:bb:cc:dd:ee }',
      'flush set bridge castnet src4',
      'add element bridge castnet src4 { "cn0123456789a" . 02:aa:bb:cc:dd:ee . 10.30.0.1 }',
      'flush set bridge castnet src6',
      'flush set bridge castnet nd6',
      'flush set bridge castnet lladdr',
      'add element bridge castnet lladdr { "cn0123456789a" . 0x02aabbccddee }',
    ]);
    expect(guardSetsBatch(guardEntries([]))).not.toContain('add element');
  });

  it('checks only ready endpoints’ ports, and exempts the unspecified and link-local sources', () => {
    const table = guardTableBatch();
    expect(table.startsWith('add table bridge castnet\ndelete table bridge castnet\n')).toBe(true);
    expect(table).toContain('iifname != @ports accept');
    expect(table).toContain('ip saddr != 0.0.0.0 iifname . ether saddr . ip saddr != @src4');
    expect(table).toContain('ip6 saddr != { ::, fe80::/10 }');
  });

  it('checks a tagged frame like an untagged one, and drops what it cannot look into', () => {
    const rules = guardTableBatch()
      .split('\n')
      .filter((l) => l.includes(' drop'));
    // The kernel moves a VLAN tag into the packet's metadata, where `ether type` would not look past it.
    expect(rules.filter((l) => l.includes('ether type'))).toEqual([]);
    expect(
      rules.filter((l) => /\b(ip|ip6|arp) saddr/.test(l)).every((l) => l.includes('meta protocol')),
    ).toBe(true);
    expect(rules).toContainEqual(expect.stringContaining('meta protocol { 8021q, 8021ad }'));
    expect(rules).toContainEqual(expect.stringContaining('icmpv6 type { nd-router-advert, nd-redirect }'));
  });
});
