import type { Directory, EndpointRecord } from '../lookup/port.js';
import { applyVmHandoff } from './vm-handoff.js';

const vm = { namespace: 'prod', name: 'db-0' };
const ep = (node: string, endpointId: number, extra: Partial<EndpointRecord> = {}): EndpointRecord => ({
  network: 'blue',
  node,
  endpointId,
  mac: '02:00:00:00:00:10',
  ips: ['10.0.0.10'],
  vm,
  ...extra,
});
const dir = (endpoints: EndpointRecord[], memberships: Directory['memberships'] = []): Directory => ({
  networks: [],
  nodes: [],
  groups: [],
  endpoints,
  memberships,
});
const join = (node: string, endpointId: number, group: string) => ({
  network: 'blue',
  group,
  node,
  endpointId,
  filter: { mode: 'exclude' as const, sources: [] },
});

describe('live-migration handoff', () => {
  it('keeps the source until the target becomes active', () => {
    const d = applyVmHandoff(dir([ep('n0', 1, { activatedAt: 100 }), ep('n2', 5)]));
    expect(d.endpoints.map((e) => e.node)).toEqual(['n0']);
  });

  it('switches to the target once it is active, and moves the memberships with it', () => {
    const d = applyVmHandoff(
      dir(
        [
          ep('n0', 1, { activatedAt: 100 }),
          ep('n2', 5, { activatedAt: 200 }),
          { ...ep('n1', 2), vm: undefined, mac: '02:00:00:00:00:20', ips: ['10.0.0.20'] },
        ],
        [
          join('n0', 1, '239.1.1.1'),
          join('n0', 1, '239.2.2.2'),
          join('n2', 5, '239.2.2.2'),
          join('n1', 2, '239.1.1.1'),
        ],
      ),
    );
    expect(d.endpoints.map((e) => `${e.node}/${e.endpointId}`).sort()).toEqual(['n1/2', 'n2/5']);
    expect(d.memberships.map((m) => `${m.group}@${m.node}/${m.endpointId}`).sort()).toEqual([
      '239.1.1.1@n1/2',
      '239.1.1.1@n2/5',
      '239.2.2.2@n2/5',
    ]);
  });

  it('with moveMemberships off, the target keeps only the groups its guest reported from there', () => {
    const d = applyVmHandoff(
      dir(
        [ep('n0', 1, { activatedAt: 100 }), ep('n2', 5, { activatedAt: 200 })],
        [join('n0', 1, '239.1.1.1'), join('n0', 1, '239.2.2.2'), join('n2', 5, '239.2.2.2')],
      ),
      { moveMemberships: false },
    );
    expect(d.endpoints.map((e) => `${e.node}/${e.endpointId}`)).toEqual(['n2/5']);
    expect(d.memberships.map((m) => `${m.group}@${m.node}/${m.endpointId}`)).toEqual(['239.2.2.2@n2/5']);
  });

  it('leaves a directory without duplicated VMs untouched, and keeps VMs of other networks apart', () => {
    const d = dir([ep('n0', 1), { ...ep('n1', 1), network: 'red' }]);
    expect(applyVmHandoff(d)).toBe(d);
  });
});
