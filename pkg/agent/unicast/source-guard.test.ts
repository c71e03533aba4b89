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
});
