import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LIMITS } from '../limits.js';
import { DirectoryStore } from '../store.js';
import type { Directory, EndpointRecord, UnderlayHealthReport } from '../port.js';
import { EmbeddedLookupServer } from './server.js';
import { EmbeddedLookupClient, readUnderlayHealth } from './client.js';
import { networkSpec } from '../schema.js';

const ep = (node: string, endpointId: number, ip: string): EndpointRecord => ({
  network: 'blue',
  node,
  endpointId,
  mac: `02:00:00:00:${((endpointId >> 8) & 0xff).toString(16).padStart(2, '0')}:${(endpointId & 0xff).toString(16).padStart(2, '0')}`,
  ips: [ip],
});

function until(client: EmbeddedLookupClient, pred: (d: Directory) => boolean): Promise<Directory> {
  return new Promise((resolve) => {
    // subscribe() may call back synchronously, before it has returned the unsubscribe.
    let done = false;
    const off: () => void = client.subscribe((d) => {
      if (!done && pred(d)) {
        done = true;
        queueMicrotask(() => off());
        resolve(d);
      }
    });
  });
}

describe('embedded lookup service', () => {
  let dir: string;
  let sock: string;
  let server: EmbeddedLookupServer;
  const clients: EmbeddedLookupClient[] = [];
  const client = () => {
    const c = new EmbeddedLookupClient(sock);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'castnet-lookup-'));
    sock = join(dir, 'lookup.sock');
    server = new EmbeddedLookupServer(new DirectoryStore(), sock);
    await server.listen();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.dispose();
    await server.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps a VM's address reservation for every node until the VM is deleted", async () => {
    const [a, b] = [client(), client()];
    const vm = { namespace: 'vms', name: 'db-0' };
    expect(await a.addressReservation(vm, 'blue')).toBeUndefined();
    const owner = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: 'db-0', uid: 'u1' };
    const first = await a.reserveAddresses({ network: 'blue', vm, ips: ['10.0.1.5'] }, { owner });
    expect(first).toMatchObject({ ips: ['10.0.1.5'], ownerUid: 'u1' });
    // The first reservation holds: another node's gets it back.
    expect(await b.reserveAddresses({ network: 'blue', vm, ips: ['10.0.2.9'] })).toEqual(first);
    expect(await b.addressReservation(vm, 'blue')).toEqual(first);
    const d = await until(b, (x) => (x.reservations ?? []).length === 1);
    expect(d.reservations![0]!.vm).toEqual(vm);
    await expect(a.reserveAddresses({ network: 'blue', vm, ips: ['not-an-ip'] })).rejects.toThrow(
      /422 .*invalid reservation: ips\.0: must be an IPv4 or IPv6 address/,
    );
    server.store.deleteVm('vms', 'db-0');
    await until(b, (x) => (x.reservations ?? []).length === 0);
    expect(await b.addressReservation(vm, 'blue')).toBeUndefined();
  });

  it("shows one node's published endpoints to every other node's watch", async () => {
    const a = client();
    const b = client();
    await a.registerNode({ name: 'node-a', address: '10.99.0.1', port: 4790, poolIndex: 0 });
    await a.publishEndpoints('node-a', [ep('node-a', 1, '10.1.0.2'), ep('node-a', 2, '10.1.0.3')]);
    const d = await until(b, (d) => d.endpoints.length === 2);
    expect(d.nodes.map((n) => n.name)).toEqual(['node-a']);
    expect(d.endpoints.map((e) => e.endpointId).sort()).toEqual([1, 2]);
  });

  it('replaces rather than appends a node report', async () => {
    const a = client();
    await a.publishEndpoints('node-a', [ep('node-a', 1, '10.1.0.2')]);
    await a.publishEndpoints('node-a', [ep('node-a', 3, '10.1.0.4')]);
    const d = await until(a, (d) => d.endpoints.some((e) => e.endpointId === 3));
    expect(d.endpoints).toHaveLength(1);
  });

  it('rejects a malformed report naming the field, and keeps the previous state', async () => {
    const a = client();
    await a.publishEndpoints('node-a', [ep('node-a', 1, '10.1.0.2')]);
    const bad = [{ ...ep('node-a', 2, '10.1.0.3'), mac: 'zz' }];
    await expect(a.publishEndpoints('node-a', bad)).rejects.toThrow(/422.*0\.mac: must be a lower-case MAC/);
    await expect(
      a.reportMemberships('node-a', [
        {
          network: 'blue',
          group: 'not-an-ip',
          node: 'node-a',
          endpointId: 1,
          filter: { mode: 'exclude', sources: [] },
        },
      ]),
    ).rejects.toThrow(/0\.group: must be an IPv4 or IPv6 address/);
    expect(server.store.snapshot().endpoints.map((e) => e.endpointId)).toEqual([1]);
  });

  it("refuses a node writing another node's endpoints", async () => {
    await expect(client().publishEndpoints('node-a', [ep('node-b', 1, '10.1.0.2')])).rejects.toThrow(
      /may not be published by node-a/,
    );
  });

  it('refuses an oversized report', async () => {
    const many = Array.from({ length: 5000 }, (_, i) => ep('node-a', i + 1, '10.1.0.2'));
    await expect(client().publishEndpoints('node-a', many)).rejects.toThrow(
      `refused PUT /v1/nodes/node-a/endpoints (422): invalid endpoints report: (root): Too big: expected array to have <=${LIMITS.endpointsPerNode} items`,
    );
    expect(server.store.snapshot().endpoints).toEqual([]);
  });

  it('re-sends what a node published after the lookup service restarts', async () => {
    const a = client();
    await a.publishEndpoints('node-a', [ep('node-a', 7, '10.1.0.8')]);
    await until(a, (d) => d.endpoints.length === 1);
    await server.dispose();
    server = new EmbeddedLookupServer(new DirectoryStore(), sock);
    await server.listen();
    const d = await until(a, (d) => d.endpoints.length === 1 && d.endpoints[0]!.endpointId === 7);
    expect(d.endpoints[0]!.ips).toEqual(['10.1.0.8']);
  });

  it("keeps each node's underlay health report, refusing a bad one naming the field", async () => {
    const a = client();
    const report: UnderlayHealthReport = {
      node: 'node-a',
      probeBytes: 1472,
      condition: { status: 'False', reason: 'PeerUnreachable', message: 'unreachable: node-b' },
      peers: [{ node: 'node-b', status: 'down', rttMs: 0.3, since: '2026-01-01T00:00:00.000Z' }],
    };
    await a.reportUnderlayHealth(report);
    expect(await readUnderlayHealth(sock)).toEqual([report]);
    await expect(
      a.reportUnderlayHealth({ ...report, condition: { ...report.condition, reason: 'node-b down' } }),
    ).rejects.toThrow(/422.*condition\.reason: must be a CamelCase reason/);
    await expect(a.reportUnderlayHealth({ ...report, node: 'node-c' })).resolves.toBeUndefined();
    expect((await readUnderlayHealth(sock)).map((r) => r.node)).toEqual(['node-a', 'node-c']);
  });
});

describe('embedded lookup service: pod metadata', () => {
  it('answers the pods the operator registered, and nothing for others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'castnet-lookup-'));
    const sock = join(dir, 'lookup.sock');
    const store = new DirectoryStore();
    const server = new EmbeddedLookupServer(store, sock);
    await server.listen();
    const c = new EmbeddedLookupClient(sock);
    try {
      store.setPod({ namespace: 'prod', name: 'p1', labels: { a: 'b' }, annotations: {} });
      expect(await c.podMetadata('prod', 'p1')).toEqual({
        namespace: 'prod',
        name: 'p1',
        labels: { a: 'b' },
        annotations: {},
      });
      expect(await c.podMetadata('prod', 'p2')).toBeUndefined();
    } finally {
      await c.dispose();
      await server.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('directory schema', () => {
  it.each(['10.0.0.0/', '10.0.0.0/33', 'fe80::%eth0/64', '10.0.0.0/8/8', '10.0.0.0/+8'])(
    'refuses subnet %j',
    (subnet) => {
      const r = networkSpec.safeParse({
        name: 'n',
        id: 1,
        subnets: [subnet],
        mtu: 1400,
        multicast: true,
        broadcast: true,
      });
      expect(r.success).toBe(false);
    },
  );
  it('accepts CIDRs of both families', () => {
    const r = networkSpec.safeParse({
      name: 'n',
      id: 1,
      subnets: ['10.0.0.0/8', 'fd00::/64'],
      mtu: 1400,
      multicast: true,
      broadcast: true,
    });
    expect(r.success).toBe(true);
  });
});
