import type { Directory } from '../../lookup/port.js';
import { diffRemoteMacs, remoteMacs } from './plan.js';

const dir = (endpoints: Directory['endpoints']): Directory => ({
  networks: [
    { name: 'blue', id: 1, subnets: ['10.0.0.0/16'], mtu: 1400, multicast: true, broadcast: true },
    { name: 'red', id: 2, subnets: ['10.0.0.0/16'], mtu: 1400, multicast: true, broadcast: true },
  ],
  nodes: [
    { name: 'n0', address: '198.18.0.10', port: 4790, poolIndex: 0 },
    { name: 'n1', address: '198.18.0.11', port: 4790, poolIndex: 1 },
  ],
  endpoints,
  groups: [],
  memberships: [],
});

describe('cross-node unicast plan', () => {
  it('maps only remote endpoints, per network, to their node', () => {
    const m = remoteMacs(
      dir([
        { network: 'blue', node: 'n0', endpointId: 1, mac: '02:00:00:00:00:01', ips: ['10.0.0.1'] },
        { network: 'blue', node: 'n1', endpointId: 1, mac: '02:00:00:00:00:02', ips: ['10.0.1.1'] },
        { network: 'red', node: 'n1', endpointId: 2, mac: '02:00:00:00:00:03', ips: ['10.0.1.1'] },
        { network: 'blue', node: 'gone', endpointId: 9, mac: '02:00:00:00:00:09', ips: ['10.0.9.1'] },
      ]),
      'n0',
    );
    expect([...m.get('blue')!]).toEqual([['02:00:00:00:00:02', '198.18.0.11']]);
    expect([...m.get('red')!]).toEqual([['02:00:00:00:00:03', '198.18.0.11']]);
  });

  it('adds, moves and removes exactly what changed', () => {
    const applied = new Map([
      [
        'blue',
        new Map([
          ['a', 'x'],
          ['b', 'x'],
          ['c', 'x'],
        ]),
      ],
      ['gone', new Map([['z', 'x']])],
    ]);
    const desired = new Map([
      [
        'blue',
        new Map([
          ['a', 'x'],
          ['b', 'y'],
          ['d', 'x'],
        ]),
      ],
    ]);
    expect(diffRemoteMacs(applied, desired)).toEqual([
      { network: 'blue', mac: 'b', address: 'y' },
      { network: 'blue', mac: 'd', address: 'x' },
      { network: 'blue', mac: 'c' },
      { network: 'gone', mac: 'z' },
    ]);
    expect(diffRemoteMacs(desired, desired)).toEqual([]);
  });
});
