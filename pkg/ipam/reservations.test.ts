import fc from 'fast-check';
import type { AddressReservation } from '../lookup/port.js';
import {
  addressHolders,
  heldByOther,
  reservationRefusal,
  reservedAddresses,
  sameAddresses,
} from './reservations.js';

const res = (
  ns: string,
  name: string,
  ips: string[],
  createdAt?: number,
  network = 'blue',
): AddressReservation => ({
  network,
  vm: { namespace: ns, name },
  ips,
  ...(createdAt === undefined ? {} : { createdAt }),
});

const open = [{ name: 'blue' }];

describe('addressHolders', () => {
  it('gives each address to its reservation, canonical, per network', () => {
    const h = addressHolders(
      [...open, { name: 'red' }],
      [res('a', 'db-0', ['10.0.1.5', 'fd00:0::5']), res('a', 'db-0', ['10.0.1.5'], 1, 'red')],
    );
    expect([...reservedAddresses(h).get('blue')!]).toEqual(['10.0.1.5', 'fd00::5']);
    expect(heldByOther(h, 'blue', 'FD00::5', { namespace: 'b', name: 'x' })?.vm.name).toBe('db-0');
    expect(heldByOther(h, 'blue', '10.0.1.5', { namespace: 'a', name: 'db-0' })).toBeUndefined();
    expect(heldByOther(h, 'blue', '10.0.1.6', undefined)).toBeUndefined();
  });

  it('counts no reservation of a namespace the network does not allow, nor of an unknown network', () => {
    const h = addressHolders(
      [{ name: 'blue', allowedNamespaces: ['a'] }],
      [
        res('evil', 'squat', ['10.0.1.7'], 0),
        res('a', 'db-0', ['10.0.1.5']),
        res('a', 'x', ['10.9.0.1'], 0, 'gone'),
      ],
    );
    expect([...reservedAddresses(h)]).toEqual([['blue', new Set(['10.0.1.5'])]]);
  });

  it('gives an address claimed twice to the oldest reservation, whatever the order', () => {
    const all = [
      res('b', 'late', ['10.0.1.5'], 2000),
      res('a', 'early', ['10.0.1.5'], 1000),
      res('c', 'unknown-time', ['10.0.1.5']),
      res('a', 'tie', ['10.0.1.5'], 2000),
    ];
    fc.assert(
      fc.property(fc.shuffledSubarray(all, { minLength: all.length }), (order) => {
        const h = addressHolders(open, order);
        expect(heldByOther(h, 'blue', '10.0.1.5', undefined)?.vm.name).toBe('early');
      }),
    );
    const h = addressHolders(open, all);
    expect(reservationRefusal(h, all[0]!)).toBe(
      '10.0.1.5 on network "blue" is held by the older reservation of VM a/early',
    );
    expect(reservationRefusal(h, all[1]!)).toBeUndefined();
    // A newer reservation read fresh (not in the directory yet) loses too; an older one wins.
    expect(reservationRefusal(h, res('d', 'new', ['10.0.1.5'], 5000))).toMatch(/VM a\/early/);
    expect(reservationRefusal(h, res('d', 'old', ['10.0.1.5'], 10))).toBeUndefined();
  });
});

describe('sameAddresses', () => {
  it('compares sets of addresses in any text form', () => {
    expect(sameAddresses(['10.0.0.1', 'fd00::1'], ['fd00:0:0::1', '10.0.0.1'])).toBe(true);
    expect(sameAddresses(['10.0.0.1'], ['10.0.0.2'])).toBe(false);
    expect(sameAddresses(['10.0.0.1'], ['10.0.0.1', '10.0.0.2'])).toBe(false);
  });
});
