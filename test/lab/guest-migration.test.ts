// pkg/lab/migration.ts on its own: a real qemu guest migrates from one "node" to another through the
// two per-node proxies, the way KubeVirt's virt-handler carries a migration: QEMU in each pod
// namespace talks only to a unix socket, and the stream crosses between the node namespaces over
// TCP. The guest keeps running with its state (a file written before is read after, by the same
// shell over the target's console). No castnet here: the lab's VM scenarios and
// test/lab/vm-migration.test.ts put castnet's handover under it.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Guest } from '../../pkg/lab/guest.js';
import { migrateGuest } from '../../pkg/lab/migration.js';
import { NetnsFixture } from '../harness/netns-fixture.js';

const fx = new NetnsFixture('cn-mig');
const guests: Guest[] = [];
const dir = `/run/castnet-test-mig-${process.pid}`;

afterAll(async () => {
  for (const g of guests) await g.dispose();
  fx.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function podWithTap(ns: string): void {
  fx.exec(ns, 'ip', ['tuntap', 'add', 'tap0', 'mode', 'tap']);
  fx.exec(ns, 'ip', ['link', 'set', 'tap0', 'up']);
}

it('migrates a running guest between node namespaces over TCP, with its state', async () => {
  const nodeA = fx.netns('na');
  const nodeB = fx.netns('nb');
  fx.veth(nodeA, 'ul0', nodeB, 'ul0', '198.51.100.1/24', '198.51.100.2/24');
  const podA = fx.netns('pa');
  const podB = fx.netns('pb');
  podWithTap(podA);
  podWithTap(podB);
  const spec = { tap: 'tap0', mac: '02:00:0a:00:00:05', addresses: ['10.0.0.5/24'], memoryMiB: 256 };
  const source = new Guest({ ...spec, name: 'vm-src', netns: podA, workDir: join(dir, 'src') });
  guests.push(source);
  await source.start();
  await source.run('echo before-migration > /tmp/state');
  const incoming = join(dir, 'dst', 'incoming.sock');
  const target = new Guest({ ...spec, name: 'vm-dst', netns: podB, workDir: join(dir, 'dst'), incoming });
  guests.push(target);
  await target.start();

  const figures = await migrateGuest(source, target, {
    sourceNodeNs: nodeA,
    targetNodeNs: nodeB,
    targetNodeAddress: '198.51.100.2',
    port: 49152,
    sourceSocket: join(dir, 'src', 'migration.sock'),
    targetSocket: incoming,
  });

  expect(figures.downtimeMs).toBeGreaterThanOrEqual(0);
  expect(figures.totalMs).toBeGreaterThan(0);
  expect(figures.transferredBytes).toBeGreaterThan(1 << 20);
  // The same shell, now on the target's console, with its memory.
  expect(await target.run('cat /tmp/state')).toBe('before-migration');
  expect(((await source.qmp('query-status')) as { status: string }).status).toBe('postmigrate');
}, 180_000);
