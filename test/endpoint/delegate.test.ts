// Delegated IPAM through the reference host-local and static plugins (Debian containernetworking-plugins).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '../../pkg/cni/types.js';
import { addNs, addReq, conf, delNs, delReq, ip, ipJson, TestNode } from './helpers.js';

const tag = `cndg${process.pid}`;
const pods: string[] = [];
let seq = 0;
let node: TestNode;
let dataDir: string;

function pod(): string {
  const name = `${tag}p${seq++}`;
  addNs(name);
  pods.push(name);
  return name;
}

// The Debian plugins (1.1.x) speak CNI up to 1.0.0, so these configs do too.
const hostLocal = (cniVersion = '1.0.0') =>
  conf({
    cniVersion,
    ipam: {
      type: 'host-local',
      dataDir,
      ranges: [[{ subnet: '10.46.0.0/24', gateway: '10.46.0.1' }], [{ subnet: 'fd46::/64' }]],
      routes: [{ dst: '10.200.0.0/16' }],
    },
  });

/** host-local's reservations: one file per address, named by it. */
const reserved = (): string[] => readdirSync(join(dataDir, 'blue')).filter((f) => /^[0-9a-f.:]+$/.test(f));

beforeAll(() => {
  node = new TestNode(`${tag}n`);
  dataDir = mkdtempSync(join(tmpdir(), `${tag}-hl-`));
});

afterAll(() => {
  for (const p of pods) delNs(p);
  node?.destroy();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('delegated IPAM', () => {
  it('takes addresses, gateway and routes from host-local and gives them back on DEL', async () => {
    const p = pod();
    const res = await node.manager.add(addReq('h1', `/var/run/netns/${p}`, hostLocal()));
    expect(res.ips).toEqual([
      { address: '10.46.0.2/24', gateway: '10.46.0.1', interface: 1 },
      { address: expect.stringMatching(/^fd46::[0-9a-f]+\/64$/), gateway: 'fd46::1', interface: 1 },
    ]);
    expect(res.routes).toEqual([{ dst: '10.200.0.0/16' }]);
    const eth0 = ipJson<{ addr_info: { local: string; scope: string }[] }[]>(
      '-n',
      p,
      'addr',
      'show',
      'dev',
      'eth0',
    )[0];
    expect(eth0.addr_info.filter((a) => a.scope === 'global').map((a) => a.local)).toContain('10.46.0.2');
    expect(ip('-n', p, 'route', 'show', '10.200.0.0/16')).toContain('via 10.46.0.1 dev eth0');
    expect(reserved()).toContain('10.46.0.2');

    await node.manager.check(addReq('h1', `/var/run/netns/${p}`, { ...hostLocal(), prevResult: res }));
    await node.manager.del(delReq('h1', `/var/run/netns/${p}`, hostLocal()));
    expect(reserved()).not.toContain('10.46.0.2');
    await node.manager.del(delReq('h1', `/var/run/netns/${p}`, hostLocal())); // idempotent, host-local too
  });

  it('speaks a 1.1.0 config to a delegate that knows only 1.0.0, and skips STATUS for it', async () => {
    const p = pod();
    const conf11 = hostLocal('1.1.0');
    const res = await node.manager.add(addReq('h11', `/var/run/netns/${p}`, conf11));
    expect(res.cniVersion).toBe('1.1.0');
    expect(res.ips?.[0]?.address).toMatch(/^10\.46\.0\.\d+\/24$/);
    await node.manager.status(conf11, '/usr/lib/cni');
    await node.manager.del(delReq('h11', `/var/run/netns/${p}`, conf11));
    expect(reserved()).not.toContain(res.ips![0]!.address.split('/')[0]);
  });

  it('applies the static plugin addresses and default route', async () => {
    const p = pod();
    const c = conf({
      cniVersion: '1.0.0',
      ipam: {
        type: 'static',
        addresses: [{ address: '10.47.0.5/24', gateway: '10.47.0.1' }],
        routes: [{ dst: '0.0.0.0/0' }],
      },
    });
    const res = await node.manager.add(addReq('s1', `/var/run/netns/${p}`, c));
    expect(res.ips).toEqual([{ address: '10.47.0.5/24', gateway: '10.47.0.1', interface: 1 }]);
    expect(ip('-n', p, 'route', 'show', 'default')).toContain('default via 10.47.0.1 dev eth0');
    await node.manager.del(delReq('s1', `/var/run/netns/${p}`, c));
  });

  it('wraps a delegate failure as 104, keeping its message, and leaves nothing behind', async () => {
    const p = pod();
    const c = conf({
      cniVersion: '1.0.0',
      ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: 'not-a-cidr' }]] },
    });
    const e = await node.manager.add(addReq('b1', `/var/run/netns/${p}`, c)).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(CniError);
    expect((e as CniError).code).toBe(104);
    expect((e as CniError).message).toMatch(/IPAM plugin "host-local" ADD failed: .*not-a-cidr/);
    expect(ipJson('-n', p, 'link', 'show')).toHaveLength(1);
    expect(node.hostVeths()).toEqual([]);

    const missing = conf({ cniVersion: '1.0.0', ipam: { type: 'no-such-ipam' } });
    const e2 = await node.manager.add(addReq('b2', `/var/run/netns/${p}`, missing)).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((e2 as CniError).code).toBe(104);
    expect((e2 as CniError).message).toMatch(/plugin "no-such-ipam" not found in CNI_PATH/);
  });
});
