import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bridgeName, hostIfname, isHostIfname } from './names.js';
import { type Endpoint, type EndpointEvent, EndpointTable, toEndpointRecord } from './table.js';

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
    const t = EndpointTable.load(dir);
    const id = t.allocateId();
    t.put(ep('a', { endpointId: id }));
    t.cursors.set('10.0.0.0/24', '10.0.0.5');
    t.save(true);
    const t2 = EndpointTable.load(dir);
    expect(t2.get({ containerId: 'a', ifname: 'eth0' })?.endpointId).toBe(id);
    expect(t2.cursors.get('10.0.0.0/24')).toBe('10.0.0.5');
    expect(t2.allocateId()).toBe(id + 1);
    expect(t2.usedIps('blue')).toEqual(new Set(['10.0.0.5']));
    expect(t2.usedIps('red')).toEqual(new Set());
  });

  it('never hands out an ID a record holds, and wraps past 2^32-1 skipping 0', () => {
    const t = EndpointTable.load(dir);
    t.put(ep('a', { endpointId: 2 }));
    expect(t.allocateId()).toBe(1);
    expect(t.allocateId()).toBe(3);
    (t as unknown as { nextId: number }).nextId = 0xffffffff;
    expect(t.allocateId()).toBe(0xffffffff);
    expect(t.allocateId()).toBe(1);
  });

  it('tells listeners when an endpoint turns ready and when a ready one goes', () => {
    const t = EndpointTable.load(dir);
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
    const t = EndpointTable.load(dir);
    for (let i = 0; i < 20; i++) {
      t.put(ep(`c${i}`, { endpointId: t.allocateId() }));
      t.save(i % 2 === 0);
    }
    t.remove({ containerId: 'c3', ifname: 'eth0' });
    t.save(false);
    expect(readdirSync(join(dir, 'endpoints'))).toHaveLength(19);
    expect(readdirSync(dir).sort()).toEqual(['endpoint-meta.json', 'endpoints']);
    expect(EndpointTable.load(dir).all()).toHaveLength(19);
  });

  it('quarantines corrupt, empty and malformed files, keeping their bytes, and loads the rest', () => {
    const t = EndpointTable.load(dir);
    for (const c of ['a', 'b', 'c', 'd']) t.put(ep(c, { endpointId: t.allocateId(), state: 'ready' }));
    t.save(true);
    const file = (c: string) => join(dir, 'endpoints', `${hostIfname(c, 'eth0')}.json`);
    const garbage = Buffer.from([0x00, 0xff, 0x7b, 0x22]);
    writeFileSync(file('b'), garbage);
    writeFileSync(file('c'), '');
    writeFileSync(file('d'), JSON.stringify({ ...ep('d'), hostIfname: 'cn0000000000f' }));
    writeFileSync(join(dir, 'endpoint-meta.json'), '[]');

    const t2 = EndpointTable.load(dir);
    expect(t2.all().map((e) => e.containerId)).toEqual(['a']);
    expect([...t2.lost].sort()).toEqual(['b', 'c', 'd'].map((c) => hostIfname(c, 'eth0')).sort());
    const reasons = Object.fromEntries(t2.quarantined.map((q) => [q.file, q.reason]));
    expect(reasons[file('b')]).toMatch(/is corrupt: /);
    expect(reasons[file('c')]).toMatch(/is corrupt: it is empty$/);
    expect(reasons[file('d')]).toMatch(/is malformed: hostIfname "cn0000000000f" is not the file's name$/);
    expect(reasons[join(dir, 'endpoint-meta.json')]).toMatch(/is malformed: version is not 1$/);
    for (const q of t2.quarantined) {
      expect(q.movedTo).toMatch(/\/quarantine\/[^/]+\.json\.\d{4}-\d\d-\d\dT/);
      expect(existsSync(q.file)).toBe(false);
    }
    const moved = t2.quarantined.find((q) => q.file === file('b'))!.movedTo;
    expect(readFileSync(moved)).toEqual(garbage);
    // The ID sequence continues after the highest ID still held (a's is 1, the lost ones' are unknown
    // and those endpoints get new IDs when rebuilt).
    expect(t2.allocateId()).toBe(2);
    t2.save(true);
    const t3 = EndpointTable.load(dir);
    expect(t3.quarantined).toEqual([]);
    expect(readdirSync(join(dir, 'quarantine'))).toHaveLength(4);
  });

  it('refuses a meta file of a newer version instead of discarding it', () => {
    writeFileSync(join(dir, 'endpoint-meta.json'), JSON.stringify({ version: 2 }));
    expect(() => EndpointTable.load(dir)).toThrow(/unknown version 2/);
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
