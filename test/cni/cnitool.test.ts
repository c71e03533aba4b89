// castnet driven by upstream cnitool (built by `make upstream`) the way a runtime drives it: ADD,
// CHECK, STATUS, DEL and GC on pods in network namespaces, pods reaching each other, runtimeConfig.mac
// through the declared capability, and a conflist chaining the reference `tuning` plugin after castnet.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import { TestAgent } from '../harness/agent.js';
import { castnetCni, invokeCni } from '../harness/cni.js';
import { upstreamBin } from '../harness/k8s.js';
import { addNetns, delNetns, ipv4Of, links, netnsPath, netnsTag, pings, veths } from '../harness/netns.js';

const tag = netnsTag('tool');
const cnitool = path.join(upstreamBin, 'cnitool');
const REFERENCE_DIR = '/usr/lib/cni';
const GREEN = {
  name: 'green',
  id: 74,
  subnets: ['10.74.0.0/16'],
  mtu: 1400,
  multicast: true,
  broadcast: true,
};
const pods = [1, 2, 3, 4].map((i) => `${tag}p${i}`);

let agent: TestAgent;
let dir: string;

/** Writes conflist `name` and returns cnitool's environment for it. */
async function conflist(
  name: string,
  plugins: Record<string, unknown>[],
  cniVersion = '1.1.0',
): Promise<void> {
  const list = { cniVersion, name, plugins };
  await writeFile(path.join(dir, 'net.d', `${name}.conflist`), JSON.stringify(list));
}

function tool(args: string[], env: Record<string, string> = {}) {
  const vars = [
    `NETCONFPATH=${path.join(dir, 'net.d')}`,
    // The runtime finds a plugin by its `type`: castnet's binary is installed as `castnet`.
    `CNI_PATH=${path.join(dir, 'bin')}:${REFERENCE_DIR}`,
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
  ];
  return run('env', [...vars, cnitool, ...args]);
}

// Conflist names are unique to this file: libcni caches attachments per network name machine-wide.
const net = (name: string): string => `${tag}-${name}`;
const castnetPlugin = (network: string) => ({
  type: 'castnet',
  network,
  agentSocket: agent.socket,
  capabilities: { mac: true },
});

beforeAll(async () => {
  if (!existsSync(cnitool)) throw new Error(`${cnitool} is missing: run \`make upstream\``);
  dir = await mkdtemp(path.join(tmpdir(), `${tag}-`));
  await run('mkdir', ['-p', path.join(dir, 'net.d'), path.join(dir, 'bin')]);
  await symlink(castnetCni, path.join(dir, 'bin', 'castnet'));
  agent = await TestAgent.start({
    tag,
    networks: [GREEN, { ...GREEN, name: 'tuned', id: 75, subnets: ['10.75.0.0/16'] }],
  });
  for (const ns of pods) await addNetns(ns);
  await conflist(net('green'), [castnetPlugin('green')]);
  await conflist(
    net('tuned'),
    [
      { ...castnetPlugin('tuned'), capabilities: undefined },
      { type: 'tuning', mtu: 1280, allmulti: true, sysctl: { 'net.ipv4.conf.eth0.arp_announce': '2' } },
    ],
    // Debian's reference plugins speak up to 1.0.0.
    '1.0.0',
  );
  await conflist(net('legacy'), [castnetPlugin('green')], '0.4.0');
}, 60000);

afterAll(async () => {
  for (const ns of pods) {
    await tool(['del', net('green'), netnsPath(ns)]).catch(() => undefined);
    await tool(['del', net('tuned'), netnsPath(ns)]).catch(() => undefined);
    await tool(['del', net('legacy'), netnsPath(ns)]).catch(() => undefined);
  }
  await agent?.destroy();
  for (const ns of pods) await delNetns(ns);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('cnitool with castnet', () => {
  it('ADDs two pods that reach each other, with the requested MAC', async () => {
    const a = JSON.parse(
      (await tool(['add', net('green'), netnsPath(pods[0])], { CAP_ARGS: '{"mac":"02:74:00:00:00:01"}' }))
        .stdout,
    );
    const b = JSON.parse((await tool(['add', net('green'), netnsPath(pods[1])])).stdout);
    expect(a.cniVersion).toBe('1.1.0');
    const podIf = a.interfaces.find((i: { sandbox?: string }) => i.sandbox === netnsPath(pods[0]));
    expect(podIf).toMatchObject({ name: 'eth0', mac: '02:74:00:00:00:01', mtu: 1400 });
    const ipA = (await ipv4Of(pods[0], 'eth0'))[0];
    const ipB = (await ipv4Of(pods[1], 'eth0'))[0];
    expect(a.ips[0].address).toBe(`${ipA}/16`);
    expect(b.ips[0].address).toBe(`${ipB}/16`);
    expect(ipA).not.toBe(ipB);
    expect((await links(pods[0])).find((l) => l.ifname === 'eth0')?.address).toBe('02:74:00:00:00:01');
    expect(await pings(pods[0], ipB)).toBe(true);
    expect(await pings(pods[1], ipA)).toBe(true);
  });

  it('CHECKs and reports STATUS', async () => {
    await expect(tool(['check', net('green'), netnsPath(pods[0])])).resolves.toMatchObject({ stdout: '' });
    await expect(tool(['status', net('green'), netnsPath(pods[0])])).resolves.toMatchObject({ stdout: '' });
  });

  it('fails CHECK, naming what is wrong, once the pod interface lost its address', async () => {
    const [ipB] = await ipv4Of(pods[1], 'eth0');
    await run('ip', ['-n', pods[1], 'addr', 'del', `${ipB}/16`, 'dev', 'eth0']);
    await expect(tool(['check', net('green'), netnsPath(pods[1])])).rejects.toThrow(
      `lacks address(es) ${ipB}/16`,
    );
    await run('ip', ['-n', pods[1], 'addr', 'add', `${ipB}/16`, 'dev', 'eth0']);
  });

  it('DELs idempotently, removing the veth', async () => {
    const before = (await veths(agent.nodeNs)).length;
    await tool(['del', net('green'), netnsPath(pods[1])]);
    await tool(['del', net('green'), netnsPath(pods[1])]);
    expect((await links(pods[1])).map((l) => l.ifname)).toEqual(['lo']);
    expect((await veths(agent.nodeNs)).length).toBe(before - 1);
  });

  it('GC removes attachments not listed as valid and keeps the listed ones', async () => {
    // Attachments made directly (not in cnitool's cache), as another runtime would have.
    const conf = {
      cniVersion: '1.1.0',
      name: net('green'),
      network: 'green',
      type: 'castnet',
      agentSocket: agent.socket,
    };
    const attach = (ns: string, id: string) =>
      invokeCni({
        command: 'ADD',
        stdin: conf,
        env: { CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'net1' },
      });
    expect(await attach(pods[2], 'gc-keep')).toMatchObject({ status: 0 });
    expect(await attach(pods[3], 'gc-stale')).toMatchObject({ status: 0 });
    const gc = await invokeCni({
      command: 'GC',
      stdin: { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'gc-keep', ifname: 'net1' }] },
    });
    expect(gc).toMatchObject({ status: 0, stdout: '' });
    expect((await links(pods[2])).map((l) => l.ifname)).toContain('net1');
    expect((await links(pods[3])).map((l) => l.ifname)).not.toContain('net1');

    // cnitool's GC lists nothing as valid: every green attachment goes, pod 1's included.
    await tool(['gc', net('green'), netnsPath(pods[0])]);
    for (const ns of [pods[0], pods[2]]) expect((await links(ns)).map((l) => l.ifname)).toEqual(['lo']);
    expect(await veths(agent.nodeNs)).toEqual([]);
  });

  it('chains the reference tuning plugin after castnet', async () => {
    const result = JSON.parse((await tool(['add', net('tuned'), netnsPath(pods[3])])).stdout);
    expect(result.ips[0].address).toMatch(/^10\.75\./);
    const eth0 = (await links(pods[3])).find((l) => l.ifname === 'eth0');
    expect(eth0?.mtu).toBe(1280);
    const { stdout } = await run('ip', ['-n', pods[3], 'link', 'show', 'eth0']);
    expect(stdout).toContain('ALLMULTI');
    const sysctl = await run('ip', [
      'netns',
      'exec',
      pods[3],
      'sysctl',
      '-n',
      'net.ipv4.conf.eth0.arp_announce',
    ]);
    expect(sysctl.stdout.trim()).toBe('2');
    // castnet's CHECK tolerates what tuning changed; tuning's CHECK verifies its own settings.
    await expect(tool(['check', net('tuned'), netnsPath(pods[3])])).resolves.toMatchObject({ stdout: '' });
    await tool(['del', net('tuned'), netnsPath(pods[3])]);
    expect((await links(pods[3])).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('speaks 0.4.0: the result carries each IP version, and CHECK and DEL work', async () => {
    const result = JSON.parse((await tool(['add', net('legacy'), netnsPath(pods[2])])).stdout);
    expect(result.cniVersion).toBe('0.4.0');
    expect(result.ips[0]).toMatchObject({ version: '4', address: expect.stringMatching(/^10\.74\./) });
    await expect(tool(['check', net('legacy'), netnsPath(pods[2])])).resolves.toMatchObject({ stdout: '' });
    await tool(['del', net('legacy'), netnsPath(pods[2])]);
    expect((await links(pods[2])).map((l) => l.ifname)).toEqual(['lo']);
  });
});
