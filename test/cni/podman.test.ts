// Debian's podman with the CNI network backend runs two busybox containers on a castnet network, and
// they ping each other. podman runs under `nsenter --net=<node netns>`, so the containers' host sides
// live in the test's node namespace; its configuration, storage and image stay in a temp dir.
import { mkdtemp, mkdir, rm, symlink, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import { TestAgent } from '../harness/agent.js';
import { castnetCni } from '../harness/cni.js';
import { netnsPath, netnsTag, veths } from '../harness/netns.js';

const tag = netnsTag('pod');
const BLUE = { name: 'blue', id: 78, subnets: ['10.78.0.0/16'], mtu: 1400, multicast: true, broadcast: true };
const IMAGE = `localhost/${tag}-busybox:test`;
const NETWORK = `${tag}-blue`;

let agent: TestAgent;
let dir: string;

function podman(args: string[], timeoutMs = 60000) {
  return run(
    'env',
    [
      `CONTAINERS_CONF=${path.join(dir, 'containers.conf')}`,
      `CONTAINERS_STORAGE_CONF=${path.join(dir, 'storage.conf')}`,
      'nsenter',
      `--net=${netnsPath(agent.nodeNs)}`,
      'podman',
      ...args,
    ],
    { timeoutMs },
  );
}

/** podman settings this machine needs (runc, cgroupfs, file events, ulimits), all state under `dir`. */
async function writePodmanConfig(): Promise<void> {
  await writeFile(
    path.join(dir, 'containers.conf'),
    `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["${path.join(dir, 'cni-bin')}", "/usr/lib/cni"]
network_config_dir = "${path.join(dir, 'net.d')}"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${path.join(dir, 'events.log')}"
tmp_dir = "${path.join(dir, 'run/libpod')}"
`,
  );
  await writeFile(
    path.join(dir, 'storage.conf'),
    `[storage]
driver = "vfs"
graphroot = "${path.join(dir, 'storage')}"
runroot = "${path.join(dir, 'run/storage')}"
`,
  );
}

/** A busybox image imported from a rootfs made of Debian's busybox-static. */
async function importBusybox(): Promise<void> {
  const rootfs = path.join(dir, 'rootfs');
  await mkdir(path.join(rootfs, 'bin'), { recursive: true });
  await copyFile('/bin/busybox', path.join(rootfs, 'bin/busybox'));
  for (const applet of ['sh', 'ip', 'ping', 'sleep'])
    await symlink('busybox', path.join(rootfs, 'bin', applet));
  await run('tar', ['-C', rootfs, '-cf', path.join(dir, 'rootfs.tar'), '.']);
  await podman(['import', path.join(dir, 'rootfs.tar'), IMAGE]);
}

beforeAll(async () => {
  agent = await TestAgent.start({ tag, networks: [BLUE] });
  dir = await mkdtemp(path.join(tmpdir(), `${tag}-`));
  for (const sub of ['cni-bin', 'net.d', 'run']) await mkdir(path.join(dir, sub), { recursive: true });
  await symlink(castnetCni, path.join(dir, 'cni-bin/castnet'));
  await writeFile(
    path.join(dir, 'net.d', `${NETWORK}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: NETWORK,
      plugins: [{ type: 'castnet', network: 'blue', agentSocket: agent.socket }],
    }),
  );
  await writePodmanConfig();
  await importBusybox();
}, 120000);

afterAll(async () => {
  if (dir) {
    await podman(['rm', '-f', '-t', '0', '-a']).catch(() => undefined);
    await podman(['rmi', '-a', '-f']).catch(() => undefined);
  }
  await agent?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120000);

describe('podman with the CNI backend on castnet', () => {
  it('runs two busybox containers that ping each other, and removes their veths', async () => {
    for (const name of ['one', 'two']) {
      await podman(['run', '-d', '--name', `${tag}-${name}`, '--network', NETWORK, IMAGE, 'sleep', '600']);
    }
    const ipOf = async (name: string) =>
      (
        await podman([
          'inspect',
          `${tag}-${name}`,
          '--format',
          `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`,
        ])
      ).stdout.trim();
    const [one, two] = [await ipOf('one'), await ipOf('two')];
    expect(one).toMatch(/^10\.78\./);
    expect(two).toMatch(/^10\.78\./);
    expect(one).not.toBe(two);
    expect((await veths(agent.nodeNs)).length).toBe(2);

    const ping = await podman(['exec', `${tag}-one`, 'ping', '-c', '2', '-W', '2', two]);
    expect(ping.stdout).toContain('2 packets received');
    await podman(['exec', `${tag}-two`, 'ping', '-c', '1', '-W', '2', one]);

    await podman(['rm', '-f', '-t', '0', `${tag}-one`, `${tag}-two`]);
    expect(await veths(agent.nodeNs)).toEqual([]);
  }, 120000);
});
