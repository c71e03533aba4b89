// What the chart's agent pod does on a node, with the real commands: the init container installs
// castnet-cni (and, as primary network, a conflist the runtime can use with the real agent), the
// readiness probe, and the uninstall hook removing castnet's files, links and state but nothing else.
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import { castnetBin, TestAgent } from '../harness/agent.js';
import { castnetCni, invokeCni } from '../harness/cni.js';
import { addNetns, delNetns, links, netnsPath, netnsTag } from '../harness/netns.js';

const tag = netnsTag('inst');
const BLUE = {
  name: 'blue',
  id: 0x4b1,
  subnets: ['10.81.0.0/16'],
  mtu: 1400,
  multicast: true,
  broadcast: true,
};
let dir: string;
let binDir: string;
let confDir: string;
const podNs = `${tag}p`;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const castnet = (...args: string[]) => run(castnetBin, args);
const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), `${tag}-`));
  binDir = path.join(dir, 'opt/cni/bin');
  confDir = path.join(dir, 'etc/cni/net.d');
  await mkdir(binDir, { recursive: true });
  await mkdir(confDir, { recursive: true });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await delNetns(podNs);
});

test('secondary mode installs castnet-cni (as castnet, its plugin type) and writes no conflist (Multus reads NetworkAttachmentDefinitions)', async () => {
  const { stdout } = await castnet(
    'install-cni',
    '--mode',
    'secondary',
    '--bin-dir',
    binDir,
    '--conf-dir',
    confDir,
  );
  expect(stdout).toContain(path.join(binDir, 'castnet'));
  // By digest: jest's deep equality walks a 6 MB buffer byte by byte (a minute on a loaded machine).
  expect(sha256(await readFile(path.join(binDir, 'castnet')))).toBe(sha256(await readFile(castnetCni)));
  expect(await readdir(confDir)).toEqual([]);
  const version = await invokeCni({
    command: 'VERSION',
    stdin: { cniVersion: '1.1.0' },
    binary: path.join(binDir, 'castnet'),
  });
  expect(version).toMatchObject({ status: 0, json: { cniVersion: '1.1.0' } });
});

test('install-cni refuses a bad mode and a missing binary, naming the flag and the file', async () => {
  await expect(castnet('install-cni', '--mode', 'tertiary', '--bin-dir', binDir)).rejects.toThrow(
    /--mode: "tertiary" must be primary or secondary/,
  );
  const missing = path.join(dir, 'nope');
  await expect(
    castnet(
      'install-cni',
      '--mode',
      'primary',
      '--source',
      missing,
      '--bin-dir',
      binDir,
      '--conf-dir',
      confDir,
    ),
  ).rejects.toThrow(new RegExp(`failed to install ${path.join(binDir, 'castnet')}: .*${missing}`));
  // Nothing half-written, and no conflist naming a plugin that is not there.
  expect(await readdir(binDir)).toEqual([]);
  expect(await readdir(confDir)).toEqual([]);
});

describe('with a real agent', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await TestAgent.start({ tag, networks: [BLUE] });
  }, 60000);
  afterAll(async () => {
    await agent?.destroy();
  });

  test('primary mode: the conflist works with the installed binary; agent-ready; uninstall removes only castnet’s', async () => {
    await castnet(
      ...['install-cni', '--mode', 'primary', '--bin-dir', binDir, '--conf-dir', confDir],
      ...['--network', 'blue', '--mtu', '1400', '--agent-socket', agent.socket],
    );
    expect((await readdir(confDir)).sort()).toEqual(['10-castnet.conflist']);
    const conflist = JSON.parse(await readFile(path.join(confDir, '10-castnet.conflist'), 'utf8')) as {
      cniVersion: string;
      name: string;
      plugins: Array<Record<string, unknown>>;
    };
    expect(conflist.plugins).toHaveLength(1);

    // The readiness probe: exit 0 against the serving agent, and a failure naming a socket nobody serves.
    await expect(castnet('agent-ready', '--socket', agent.socket)).resolves.toMatchObject({ stdout: '' });
    const nobody = path.join(path.dirname(agent.socket), 'nobody.sock');
    await expect(castnet('agent-ready', '--socket', nobody)).rejects.toThrow(
      `castnet agent at ${nobody} is not serving`,
    );

    // What a runtime does with the conflist: the plugin's config with the list's name and version.
    await addNetns(podNs);
    const stdin = { cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] };
    const env = {
      CNI_CONTAINERID: `${tag}c1`,
      CNI_NETNS: netnsPath(podNs),
      CNI_IFNAME: 'eth0',
      CNI_PATH: binDir,
    };
    // A runtime runs the plugin named by the config's type from its bin dir.
    const binary = path.join(binDir, String(conflist.plugins[0].type));
    const add = await invokeCni({ command: 'ADD', stdin, env, binary });
    expect(add).toMatchObject({ status: 0 });
    expect((add.json?.ips as Array<{ address: string }>)[0].address).toMatch(/^10\.81\./);
    expect(await invokeCni({ command: 'STATUS', stdin, env: { CNI_PATH: binDir }, binary })).toMatchObject({
      status: 0,
    });

    // Another plugin's conflist and a link named like castnet's but not castnet's survive uninstall.
    await writeFile(
      path.join(confDir, '05-other.conflist'),
      '{"cniVersion":"1.0.0","name":"o","plugins":[{"type":"bridge"}]}',
    );
    await run('ip', ['-n', agent.nodeNs, 'link', 'add', 'cni0', 'type', 'bridge']);
    await run('ip', ['-n', agent.nodeNs, 'link', 'add', 'cnbrx', 'type', 'bridge']);
    const castnetLinks = (await links(agent.nodeNs))
      .map((l) => l.ifname)
      .filter((n) => /^cn(br[0-9a-f]{6}|[0-9a-f]{11})$/.test(n));
    // The network's bridge (docs/endpoints.md: cnbr + the network ID in 6 hex digits) and the pod's
    // host veth, as the ADD result named it.
    const hostVeth = (add.json?.interfaces as Array<{ name: string; sandbox?: string }>).find(
      (i) => !i.sandbox,
    )!.name;
    expect(castnetLinks.sort()).toEqual(['cnbr0004b1', hostVeth].sort());

    await agent.kill();
    await expect(castnet('agent-ready', '--socket', agent.socket)).rejects.toThrow(/is not serving/);
    const { stdout } = await castnet(
      ...['uninstall-node', '--bin-dir', binDir, '--conf-dir', confDir, '--state-dir', agent.stateDir],
      ...['--socket-dir', path.dirname(agent.socket), '--netns', netnsPath(agent.nodeNs)],
    );
    for (const link of castnetLinks) expect(stdout).toContain(`deleted link ${link}`);
    expect((await links(agent.nodeNs)).map((l) => l.ifname).sort()).toEqual(['cnbrx', 'cni0', 'lo']);
    expect(await readdir(binDir)).toEqual([]);
    expect(await readdir(confDir)).toEqual(['05-other.conflist']);
    expect(await exists(agent.stateDir)).toBe(false);
    // The pod's end of the deleted veth went with it.
    expect((await links(podNs)).map((l) => l.ifname)).toEqual(['lo']);

    // Idempotent: a second run finds nothing and succeeds.
    const again = await castnet(
      'uninstall-node',
      '--bin-dir',
      binDir,
      '--conf-dir',
      confDir,
      '--state-dir',
      agent.stateDir,
      '--socket-dir',
      path.dirname(agent.socket),
      '--netns',
      netnsPath(agent.nodeNs),
    );
    expect(again.stdout).not.toContain('deleted link');
  }, 60000);
});
