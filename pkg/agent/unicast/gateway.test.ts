import type { Directory } from '../../lookup/port.js';
import { primaryPodRoutes } from '../../endpoint/primary.js';
import { gatewayMac, neighbourCommands, neighbours } from './gateway.js';
import { vxlanMtu } from './overlay.js';

const dir = (endpoints: Directory['endpoints']): Directory => ({
  networks: [
    {
      name: 'pods',
      id: 1,
      subnets: ['10.244.0.0/16', 'fd00:244::/56'],
      mtu: 1400,
      multicast: true,
      broadcast: true,
    },
    { name: 'other', id: 2, subnets: ['10.9.0.0/16'], mtu: 1400, multicast: true, broadcast: true },
  ],
  nodes: [],
  endpoints,
  groups: [],
  memberships: [],
});

describe('primary network gateway', () => {
  it("maps every node's IPv4 endpoint addresses of the network, and only those, to their MACs", () => {
    const n = neighbours(
      dir([
        {
          network: 'pods',
          node: 'n0',
          endpointId: 1,
          mac: '02:00:00:00:00:0A',
          ips: ['10.244.0.1', 'fd00:244::1'],
        },
        { network: 'pods', node: 'n1', endpointId: 1, mac: '02:00:00:00:00:02', ips: ['10.244.1.1'] },
        { network: 'other', node: 'n1', endpointId: 2, mac: '02:00:00:00:00:03', ips: ['10.9.1.1'] },
      ]),
      'pods',
    );
    expect([...n]).toEqual([
      ['10.244.0.1', '02:00:00:00:00:0a'],
      ['10.244.1.1', '02:00:00:00:00:02'],
    ]);
  });

  it('adds new and moved entries and deletes gone ones, and nothing when nothing changed', () => {
    const have = new Map([
      ['10.244.0.1', '02:00:00:00:00:01'],
      ['10.244.0.2', '02:00:00:00:00:02'],
    ]);
    const want = new Map([
      ['10.244.0.1', '02:00:00:00:00:01'],
      ['10.244.0.2', '02:00:00:00:00:09'],
      ['10.244.0.3', '02:00:00:00:00:03'],
    ]);
    expect(neighbourCommands('cnbr000001', have, want)).toEqual([
      'neigh replace 10.244.0.2 lladdr 02:00:00:00:00:09 dev cnbr000001 nud permanent',
      'neigh replace 10.244.0.3 lladdr 02:00:00:00:00:03 dev cnbr000001 nud permanent',
    ]);
    expect(neighbourCommands('cnbr000001', want, have)).toEqual([
      'neigh replace 10.244.0.2 lladdr 02:00:00:00:00:02 dev cnbr000001 nud permanent',
      'neigh del 10.244.0.3 dev cnbr000001',
    ]);
    expect(neighbourCommands('cnbr000001', want, want)).toEqual([]);
  });

  it("gives each node's bridge its own stable, locally administered unicast MAC", () => {
    const a = gatewayMac('node-1', 1);
    expect(a).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(gatewayMac('node-1', 1)).toBe(a);
    expect(gatewayMac('node-2', 1)).not.toBe(a);
    expect(gatewayMac('node-1', 2)).not.toBe(a);
  });

  it("routes a pod's default through the link-local gateway, only for networks with IPv4", () => {
    expect(primaryPodRoutes(['10.244.0.0/16'])).toEqual([
      { dst: '169.254.1.1/32', scope: 253 },
      { dst: '0.0.0.0/0', gw: '169.254.1.1' },
    ]);
    expect(primaryPodRoutes(['fd00::/64'])).toEqual([]);
  });

  it('sizes the VXLAN port so an encapsulated frame fits the underlay MTU', () => {
    expect(vxlanMtu(1500, '198.19.240.11')).toBe(1450);
    expect(vxlanMtu(1500, 'fd00::11')).toBe(1430);
  });
});
