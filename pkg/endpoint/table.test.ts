import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bridgeName, hostIfname, isHostIfname } from './names';
import { type Endpoint, type EndpointEvent, EndpointTable, toEndpointRecord } from './table';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cn-table-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const ep = (containerId: string, over: Partial<Endpoint> = {}): Endpoint => ({
  containerId,
  ifname: 'eth0',
  endpointId: 0,
  state: 'adding',
  network: 'blue',
  netns: '/var/run/netns/x',
  hostIfname: hostIfname(containerId, 'eth0'),
  mac: '02:00:00:00:00:01',
  mtu: 1500,
  ips: ['10.0.0.5/24'],
  ipam: { type: 'castnet' },
  createdAt: '2026-01-01T00:00:00Z',
  ...over,
});

describe('names', () => {
  it('derives short deterministic host veth and bridge names', () => {
    const n = hostIfname('abc', 'eth0');
    expect(n).toMatch(/^cn[0-9a-f]{11}$/);
    expect(hostIfname('abc', 'eth0')).toBe(n);
    expect(hostIfname('abc', 'net1')).not.toBe(n);
    expect(isHostIfname(n)).toBe(true);
    expect(isHostIfname('cnbr000042')).toBe(false);
    expect(bridgeName(0x42)).toBe('cnbr000042');
    expect(bridgeName(0xffffff)).toHaveLength(10);
  });
});

describe('EndpointTable', () => {
  it('persists records, cursors and the ID sequence across instances', () => {
    const t = new EndpointTable(dir);
    const id = t.allocateId();
    t.put(ep('a', { endpointId: id }));
    t.cursors.set('10.0.0.0/24', '10.0.0.5');
    t.save(true);
    const t2 = new EndpointTable(dir);
    expect(t2.get({ containerId: 'a', ifname: 'eth0' })?.endpointId).toBe(id);
    expect(t2.cursors.get('10.0.0.0/24')).toBe('10.0.0.5');
    expect(t2.allocateId()).toBe(id + 1);
    expect(t2.usedIps('blue')).toEqual(new Set(['10.0.0.5']));
    expect(t2.usedIps('red')).toEqual(new Set());
  });

  it('never hands out an ID a record holds, and wraps past 2^32-1 skipping 0', () => {
    const t = new EndpointTable(dir);
    t.put(ep('a', { endpointId: 2 }));
    expect(t.allocateId()).toBe(1);
    expect(t.allocateId()).toBe(3);
    (t as unknown as { nextId: number }).nextId = 0xffffffff;
    expect(t.allocateId()).toBe(0xffffffff);
    expect(t.allocateId()).toBe(1);
  });

  it('tells listeners when an endpoint turns ready and when a ready one goes', () => {
    const t = new EndpointTable(dir);
    const events: EndpointEvent['type'][] = [];
    const off = t.subscribe((e) => events.push(e.type));
    t.put(ep('a'));
    t.put(ep('a', { state: 'ready' }));
    t.put(ep('a', { state: 'ready', hostIfindex: 3 }));
    t.remove({ containerId: 'a', ifname: 'eth0' });
    t.put(ep('b'));
    t.remove({ containerId: 'b', ifname: 'eth0' });
    off();
    t.put(ep('c', { state: 'ready' }));
    expect(events).toEqual(['ready', 'removed']);
    expect(t.endpoints().map((e) => e.containerId)).toEqual(['c']);
  });

  it('keeps one file per endpoint, removing it with the endpoint, and no temporary files', () => {
    const t = new EndpointTable(dir);
    for (let i = 0; i < 20; i++) {
      t.put(ep(`c${i}`, { endpointId: t.allocateId() }));
      t.save(i % 2 === 0);
    }
    t.remove({ containerId: 'c3', ifname: 'eth0' });
    t.save(false);
    expect(readdirSync(join(dir, 'endpoints'))).toHaveLength(19);
    expect(readdirSync(dir).sort()).toEqual(['endpoint-meta.json', 'endpoints']);
    expect(new EndpointTable(dir).all()).toHaveLength(19);
  });

  it('names a corrupt state file', () => {
    mkdirSync(join(dir, 'endpoints'));
    writeFileSync(join(dir, 'endpoints', 'cn0123456789a.json'), '{"version":1,');
    expect(() => new EndpointTable(dir)).toThrow(/state file .*cn0123456789a.json is corrupt/);
  });

  it('converts a record to what the lookup service publishes', () => {
    const e = ep('a', {
      endpointId: 7,
      ips: ['10.0.0.5/24', 'fd00::5/64'],
      pod: { namespace: 'n', name: 'p' },
      vm: { namespace: 'n', name: 'vm1' },
    });
    expect(toEndpointRecord(e, 'node1')).toEqual({
      network: 'blue',
      node: 'node1',
      endpointId: 7,
      mac: '02:00:00:00:00:01',
      ips: ['10.0.0.5', 'fd00::5'],
      pod: { namespace: 'n', name: 'p' },
      vm: { namespace: 'n', name: 'vm1' },
    });
  });
});
