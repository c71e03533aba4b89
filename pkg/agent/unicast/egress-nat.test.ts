import { egressNatSetsBatch, egressNatTableBatch, parseNonMasqueradeCidrs } from './egress-nat.js';

describe('egress NAT', () => {
  it('masquerades only what a pod sends beyond the network and the kept destinations', () => {
    const chain = egressNatTableBatch()
      .split('\n')
      .map((l) => l.trim());
    const rules = chain.slice(chain.indexOf('type nat hook postrouting priority srcnat; policy accept;') + 1);
    expect(rules.slice(0, 4)).toEqual([
      'ip saddr != @pods accept',
      'ip daddr @pods accept',
      'ip daddr @keep accept',
      'counter name "masqueraded" masquerade',
    ]);
  });

  it('replaces both sets in one batch', () => {
    expect(egressNatSetsBatch(['10.244.0.0/16'], []).split('\n').filter(Boolean)).toEqual([
      'flush set ip castnet-nat pods',
      'add element ip castnet-nat pods { 10.244.0.0/16 }',
      'flush set ip castnet-nat keep',
    ]);
  });

  it('takes IPv4 CIDRs and addresses, and names the flag and the value it refuses', () => {
    expect(parseNonMasqueradeCidrs(['10.0.0.0/8', '192.0.2.1'])).toEqual(['10.0.0.0/8', '192.0.2.1/32']);
    expect(() => parseNonMasqueradeCidrs(['10.0.0.0/33'])).toThrow(
      '--non-masquerade-cidr: "10.0.0.0/33" is not a CIDR',
    );
    expect(() => parseNonMasqueradeCidrs(['fd00::/8'])).toThrow(
      '--non-masquerade-cidr: fd00::/8 is IPv6; only IPv4 traffic is masqueraded',
    );
  });
});
