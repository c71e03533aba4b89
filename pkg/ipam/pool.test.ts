import fc from 'fast-check';
import { CniError } from '../cni/types.js';
import type { NetworkSpec } from '../lookup/port.js';
import { allocateAddresses, poolsOf } from './castnet.js';
import { carvePool, nextFree, poolKey } from './pool.js';
import { formatIp } from '../netaddr/ip.js';
import { chooseDelegateVersion } from './delegate.js';

const net = (subnets: string[]): NetworkSpec => ({
  name: 'blue',
  id: 1,
  subnets,
  mtu: 1500,
  multicast: true,
  broadcast: true,
});

describe('carvePool', () => {
  it('takes block number `index` of the subnet, skipping its first (and in IPv4 its last) address', () => {
    const p = carvePool('10.44.0.0/16', 3);
    expect(poolKey(p)).toBe('10.44.3.0/24');
    expect(formatIp({ family: 4, value: p.first })).toBe('10.44.3.1');
    expect(formatIp({ family: 4, value: p.last })).toBe('10.44.3.254');
    const v6 = carvePool('fd44::/64', 2);
    expect(poolKey(v6)).toBe('fd44::200/120');
    expect(formatIp({ family: 6, value: v6.last })).toBe('fd44::2ff');
  });

  it('uses the whole subnet when it is smaller than a block, and honours configured sizes', () => {
    expect(poolKey(carvePool('10.0.0.0/26', 0))).toBe('10.0.0.0/26');
    expect(poolKey(carvePool('10.0.0.0/16', 5, { v4: 28, v6: 120 }))).toBe('10.0.0.80/28');
  });

  it('refuses an index beyond the subnet and a subnet with no usable address', () => {
    expect(() => carvePool('10.0.0.0/23', 2)).toThrow(
      'pool index 2 is out of range for subnet 10.0.0.0/23: it has 2 /24 block(s)',
    );
    expect(() => carvePool('10.0.0.0/31', 0)).toThrow(/too small/);
  });
});

describe('nextFree', () => {
  const pool = carvePool('10.0.0.0/29', 0); // .1 to .6

  it('hands out addresses round-robin after the cursor and wraps around', () => {
    expect(formatIp(nextFree(pool, new Set())!)).toBe('10.0.0.1');
    expect(formatIp(nextFree(pool, new Set(['10.0.0.4']), '10.0.0.3')!)).toBe('10.0.0.5');
    expect(formatIp(nextFree(pool, new Set(['10.0.0.1']), '10.0.0.6')!)).toBe('10.0.0.2');
    expect(formatIp(nextFree(pool, new Set(), '192.168.0.1')!)).toBe('10.0.0.1');
  });

  it('finds every free address before reporting exhaustion', () => {
    fc.assert(
      fc.property(fc.subarray([1, 2, 3, 4, 5, 6]), fc.integer({ min: 0, max: 7 }), (usedHosts, cursor) => {
        const used = new Set(usedHosts.map((h) => `10.0.0.${h}`));
        const got = nextFree(pool, used, `10.0.0.${cursor}`);
        if (used.size === 6) expect(got).toBeUndefined();
        else expect(used.has(formatIp(got!))).toBe(false);
      }),
    );
  });
});

describe('allocation over any sequence of ADDs and DELs', () => {
  it('hands out distinct addresses of the pool and reports exhaustion exactly when it is full', () => {
    const tiny = net(['10.0.0.0/28']); // usable .1 to .14
    const pools = poolsOf(tiny, 0, { v4: 28, v6: 120 });
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant('add' as const), fc.nat({ max: 20 })), { maxLength: 60 }),
        (ops) => {
          const held: string[] = [];
          const cursors = new Map<string, string>();
          for (const op of ops) {
            if (op === 'add') {
              const used = new Set(held);
              if (used.size === 14) {
                expect(() =>
                  allocateAddresses({ network: tiny, pools, used, cursors, poolIndex: 0 }),
                ).toThrow(/no free address/);
                continue;
              }
              const [cidr] = allocateAddresses({ network: tiny, pools, used, cursors, poolIndex: 0 });
              const ip = cidr.split('/')[0];
              const host = Number(ip.split('.')[3]);
              expect(cidr.endsWith('/28')).toBe(true);
              expect(host >= 1 && host <= 14).toBe(true);
              expect(used.has(ip)).toBe(false);
              held.push(ip);
            } else if (held.length > 0) {
              held.splice(op % held.length, 1);
            }
          }
        },
      ),
    );
  });
});

describe('allocateAddresses', () => {
  const blue = net(['10.44.0.0/16', 'fd44::/64']);
  const pools = poolsOf(blue, 1);

  it('gives one address per subnet, with the subnet prefix, and moves the cursors', () => {
    const cursors = new Map<string, string>();
    const ips = allocateAddresses({ network: blue, pools, used: new Set(), cursors, poolIndex: 1 });
    expect(ips).toEqual(['10.44.1.1/16', 'fd44::101/64']);
    expect(
      allocateAddresses({
        network: blue,
        pools,
        used: new Set(['10.44.1.1', 'fd44::101']),
        cursors,
        poolIndex: 1,
      }),
    ).toEqual(['10.44.1.2/16', 'fd44::102/64']);
  });

  it('honours requested addresses inside the subnets and refuses others naming the field', () => {
    const base = {
      network: blue,
      pools,
      used: new Set(['10.44.9.9']),
      cursors: new Map<string, string>(),
      poolIndex: 1,
    };
    expect(allocateAddresses({ ...base, requested: ['10.44.200.7/16', 'fd44::abc'] })).toEqual([
      '10.44.200.7/16',
      'fd44::abc/64',
    ]);
    expect(() => allocateAddresses({ ...base, requested: ['10.45.0.1'] })).toThrow(
      /runtimeConfig.ips\[0\]: 10.45.0.1 is not in any subnet/,
    );
    expect(() => allocateAddresses({ ...base, requested: ['10.44.9.9'] })).toThrow(
      /runtimeConfig.ips\[0\]: 10.44.9.9 is already in use/,
    );
    expect(() => allocateAddresses({ ...base, requested: ['bogus'] })).toThrow(
      /runtimeConfig.ips\[0\]: "bogus" is not an IP address/,
    );
  });

  it('throws CniError 100 naming network and pool when a pool is full', () => {
    const tiny = net(['10.0.0.0/30']);
    const err = (() => {
      try {
        allocateAddresses({
          network: tiny,
          pools: poolsOf(tiny, 0),
          used: new Set(['10.0.0.1', '10.0.0.2']),
          cursors: new Map(),
          poolIndex: 0,
        });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(100);
    expect((err as CniError).message).toBe(
      'network "blue": pool 10.0.0.0/30 (pool index 0) has no free address',
    );
  });

  it('reports a pool index that does not fit a network as its config error', () => {
    expect(() => poolsOf(net(['10.0.0.0/24']), 1)).toThrow(/network "blue": pool index 1 is out of range/);
  });
});

describe('delegate cniVersion negotiation', () => {
  it('keeps a version the delegate supports, else speaks the highest common one', () => {
    expect(chooseDelegateVersion('1.1.0', ['0.4.0', '1.0.0', '1.1.0'], 'ADD')).toBe('1.1.0');
    expect(chooseDelegateVersion('1.1.0', ['0.3.1', '0.4.0', '1.0.0'], 'ADD')).toBe('1.0.0');
    expect(chooseDelegateVersion('1.0.0', ['0.4.0'], 'DEL')).toBe('0.4.0');
    expect(chooseDelegateVersion('1.1.0', [], 'ADD')).toBe('1.1.0');
  });
  it('skips STATUS and GC for a delegate that predates CNI 1.1', () => {
    expect(chooseDelegateVersion('1.1.0', ['0.4.0', '1.0.0'], 'STATUS')).toBeUndefined();
    expect(chooseDelegateVersion('1.1.0', ['0.4.0', '1.0.0'], 'GC')).toBeUndefined();
    expect(chooseDelegateVersion('1.1.0', ['1.0.0', '1.1.0'], 'GC')).toBe('1.1.0');
    expect(chooseDelegateVersion('1.0.0', ['0.4.0', '1.0.0'], 'STATUS')).toBeUndefined();
    expect(chooseDelegateVersion('1.0.0', [], 'STATUS')).toBeUndefined();
  });
});
