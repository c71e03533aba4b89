// A real `castnet agent` killed with SIGKILL in the middle of ADD and of DEL, at each write-ahead step
// (CASTNET_TEST_CRASH_AT, docs/testing.md), driven by the real castnet-cni. After a restart nothing
// is left half-done (no veth, no bridge port, no record, no address held by castnet IPAM or by a
// delegated host-local), a retried ADD succeeds with the result an uncrashed ADD gives, and DEL then
// removes everything. A DEL made while the agent is down, with the pod's netns still there, is
// finished once the netns goes.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddStep } from '../../pkg/endpoint/node-manager.js';
import { TestAgent } from '../harness/agent.js';
import { invokeCni, type CniOutcome } from '../harness/cni.js';
import { addNetns, delNetns, links, netnsPath, netnsTag, veths } from '../harness/netns.js';
import { waitFor } from '../../pkg/base/async.js';

const tag = netnsTag('ac');
const NET = {
  name: 'crashnet',
  id: 0x78,
  subnets: ['10.78.0.0/16', 'fd78::/64'],
  mtu: 1400,
  multicast: true,
  broadcast: true,
};
// docs/endpoints.md: the network's bridge is "cnbr" and the network ID in 6 hex digits.
const BRIDGE = 'cnbr000078';
// Requested addresses and MAC (runtimeConfig) pin the result: a retried ADD is compared field by
// field, and an address a crash left reserved would make it fail ("already in use").
const IPS = ['10.78.9.9/16', 'fd78::99/64'];
const MAC = '02:78:00:00:00:09';

let agent: TestAgent;
let hostLocalDir: string;
const namespaces: string[] = [];

async function pod(name: string): Promise<string> {
  const ns = `${tag}${name}`;
  namespaces.push(ns);
  await addNetns(ns);
  return ns;
}

type Ipam = 'castnet' | 'host-local';

function cni(command: string, ns: string, id: string, ipam: Ipam = 'castnet'): Promise<CniOutcome> {
  const conf =
    ipam === 'castnet'
      ? { runtimeConfig: { ips: IPS, mac: MAC } }
      : {
          runtimeConfig: { mac: MAC },
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.78.200.0/24' }]], dataDir: hostLocalDir },
        };
  return invokeCni({
    command,
    stdin: { cniVersion: '1.1.0', name: NET.name, type: 'castnet', agentSocket: agent.socket, ...conf },
    env: { CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
}

/** The endpoint records in the agent's state directory, as its next start reads them. */
function records(): { containerId: string; state: string }[] {
  const dir = path.join(agent.stateDir, 'endpoints');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { containerId: string; state: string })
    .map((r) => ({ containerId: r.containerId, state: r.state }));
}

/** Addresses host-local holds: one file per address in <dataDir>/<network name>/ (reference plugin layout). */
function hostLocalHeld(): string[] {
  const dir = path.join(hostLocalDir, NET.name);
  // host-local creates the directory with its first allocation.
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/.test(f));
}

async function bridgePorts(): Promise<string[]> {
  return (await links(agent.nodeNs))
    .filter((l) => (l as { master?: string }).master === BRIDGE)
    .map((l) => l.ifname);
}

/** Nothing of any attachment is left: no host veth, no bridge port, no record, pod has only lo. */
async function expectNothingLeft(ns: string): Promise<void> {
  expect({
    hostVeths: (await veths(agent.nodeNs)).map((l) => l.ifname),
    bridgePorts: await bridgePorts(),
    podLinks: (await links(ns)).map((l) => l.ifname),
    records: records(),
    hostLocal: hostLocalHeld(),
  }).toEqual({ hostVeths: [], bridgePorts: [], podLinks: ['lo'], records: [], hostLocal: [] });
}

/** Arms the crash, makes the request, and checks the agent died by SIGKILL at that step. */
async function crashDuring(step: string, request: () => Promise<CniOutcome>): Promise<void> {
  await agent.restart({ CASTNET_TEST_HOOKS: '1', CASTNET_TEST_CRASH_AT: step });
  const out = await request();
  // The agent vanished mid-request: the forwarder reports an I/O failure, never success.
  expect(out).toMatchObject({ status: 1, json: { code: 5 } });
  expect(await agent.exited()).toEqual({ code: null, signal: 'SIGKILL' });
  expect(agent.logs).toContain(`{"msg":"test crash","step":"${step}"}`);
}

/** The parts of a result that do not depend on which pod or attempt it was (host veth name, host MAC). */
function portable(out: CniOutcome, ns: string): unknown {
  const r = out.json as { interfaces: { name: string; mac: string; sandbox?: string }[] };
  return {
    ...r,
    interfaces: r.interfaces.map((i) =>
      i.sandbox
        ? { ...i, sandbox: i.sandbox.replace(netnsPath(ns), '<pod>') }
        : { ...i, name: '<host>', mac: '<mac>' },
    ),
  };
}

let reference: unknown;

beforeAll(async () => {
  hostLocalDir = await mkdtemp(path.join(tmpdir(), `${tag}-hl-`));
  // A short sweep, for the deferred DEL whose netns goes away while the agent runs.
  agent = await TestAgent.start({ tag, networks: [NET], poolIndex: 3, args: ['--sweep-interval', '1'] });
  // What an ADD that never crashed answers, to compare the retried ADDs with.
  const ns = await pod('ref');
  const out = await cni('ADD', ns, 'ref');
  expect(out).toMatchObject({ status: 0 });
  reference = portable(out, ns);
  expect(reference).toMatchObject({
    cniVersion: '1.1.0',
    interfaces: [{ name: '<host>' }, { name: 'eth0', mac: MAC, sandbox: '<pod>' }],
    ips: [
      { address: IPS[0], interface: 1 },
      { address: IPS[1], interface: 1 },
    ],
  });
  expect(await cni('DEL', ns, 'ref')).toMatchObject({ status: 0 });
  await expectNothingLeft(ns);
}, 60_000);

afterAll(async () => {
  await agent?.destroy();
  for (const ns of namespaces) await delNetns(ns);
  if (hostLocalDir) await rm(hostLocalDir, { recursive: true, force: true });
});

const addSteps: AddStep[] = ['reserved', 'veth', 'port', 'container'];

describe('the agent killed during ADD', () => {
  it.each(addSteps)('after step %s: leaks nothing, and a retried ADD gets the same result', async (step) => {
    const ns = await pod(`a${step}`);
    const id = `add-${step}`;
    await crashDuring(step, () => cni('ADD', ns, id));
    // The write-ahead record is what tells the next start that this ADD was half-done.
    expect(records()).toEqual([{ containerId: id, state: 'adding' }]);

    await agent.restart();
    await expectNothingLeft(ns);

    const retry = await cni('ADD', ns, id);
    expect(retry).toMatchObject({ status: 0 });
    expect(portable(retry, ns)).toEqual(reference);
    const eth0 = (await links(ns)).find((l) => l.ifname === 'eth0');
    expect(eth0?.address).toBe(MAC);
    expect(eth0?.addr_info?.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(IPS));
    expect(await bridgePorts()).toHaveLength(1);
    expect(records()).toEqual([{ containerId: id, state: 'ready' }]);

    expect(await cni('DEL', ns, id)).toMatchObject({ status: 0 });
    await expectNothingLeft(ns);
  });

  it('after the delegated IPAM allocated (step ipam): host-local releases the address', async () => {
    const ns = await pod('aipam');
    await crashDuring('ipam', () => cni('ADD', ns, 'add-ipam', 'host-local'));
    expect(hostLocalHeld()).toHaveLength(1);
    expect(records()).toEqual([{ containerId: 'add-ipam', state: 'adding' }]);

    await agent.restart();
    await expectNothingLeft(ns);

    const retry = await cni('ADD', ns, 'add-ipam', 'host-local');
    expect(retry).toMatchObject({ status: 0 });
    const address = (retry.json as { ips: { address: string }[] }).ips[0].address;
    expect(hostLocalHeld()).toEqual([address.split('/')[0]]);
    expect(await cni('DEL', ns, 'add-ipam', 'host-local')).toMatchObject({ status: 0 });
    await expectNothingLeft(ns);
  });
});

describe('the agent killed during DEL', () => {
  it.each([
    ['unlinked', 'castnet'],
    ['unlinked', 'host-local'],
    ['ipam-released', 'host-local'],
  ] as const)(
    'after step %s (%s IPAM): the restart finishes it and the addresses are free',
    async (step, ipam) => {
      const ns = await pod(`d${step.slice(0, 4)}${ipam.slice(0, 4)}`);
      const id = `del-${step}-${ipam}`;
      expect(await cni('ADD', ns, id, ipam)).toMatchObject({ status: 0 });
      await crashDuring(step, () => cni('DEL', ns, id, ipam));
      // The record outlived the crash: the DEL was not finished.
      expect(records()).toEqual([{ containerId: id, state: 'ready' }]);

      await agent.restart();
      await expectNothingLeft(ns);
      // The runtime retries the DEL that failed: it succeeds.
      expect(await cni('DEL', ns, id, ipam)).toMatchObject({ status: 0 });
      // The addresses are free: another attachment gets exactly them (castnet) or the pool is empty (host-local).
      const other = await pod(`o${step.slice(0, 4)}${ipam.slice(0, 4)}`);
      const again = await cni('ADD', other, `${id}-again`, ipam);
      expect(again).toMatchObject({ status: 0 });
      if (ipam === 'castnet') expect(portable(again, other)).toEqual(reference);
      expect(await cni('DEL', other, `${id}-again`, ipam)).toMatchObject({ status: 0 });
      await expectNothingLeft(other);
    },
  );
});

describe('a DEL while the agent is down', () => {
  it('is deferred; with the netns still there, the restarted agent releases the endpoint once the netns goes', async () => {
    const ns = await pod('deferred');
    expect(await cni('ADD', ns, 'deferred')).toMatchObject({ status: 0 });
    await agent.kill('SIGKILL');
    const del = await cni('DEL', ns, 'deferred');
    expect(del).toMatchObject({ status: 0, stdout: '' });
    expect(del.stderr).toContain('DEL deferred');

    // The agent is back before the runtime removed the pod's netns: the endpoint is still wired, so
    // its start-up reconcile has nothing to release yet.
    await agent.restart();
    expect(records()).toEqual([{ containerId: 'deferred', state: 'ready' }]);
    expect(await bridgePorts()).toHaveLength(1);

    // The runtime removes the netns (the kernel takes the veth pair with it): the sweep releases the rest.
    await delNetns(ns);
    await waitFor(async () => records().length === 0 && (await veths(agent.nodeNs)).length === 0, {
      what: 'the sweep to release the endpoint of the removed netns',
    });
    expect(await bridgePorts()).toEqual([]);
    // Its addresses are free again.
    const other = await pod('deferred2');
    const again = await cni('ADD', other, 'deferred2');
    expect(again).toMatchObject({ status: 0 });
    expect(portable(again, other)).toEqual(reference);
    expect(await cni('DEL', other, 'deferred2')).toMatchObject({ status: 0 });
    await expectNothingLeft(other);
  });
});
