// Bad requests through the real castnet-cni and a real agent: each gets the spec's JSON error with the
// right code and a message naming the field and the reason, and leaves nothing behind: no veth on the
// node or in the pod, and no address held (the last free address of a two-address pool stays free).
import { TestAgent } from '../harness/agent.js';
import { invokeCni, type CniOutcome } from '../harness/cni.js';
import { addNetns, delNetns, links, netnsPath, netnsTag, veths } from '../harness/netns.js';
import { run } from '../../pkg/sys/exec.js';

const tag = netnsTag('bad');
// A /30 network: exactly two addresses (.1 and .2) for pods.
const TINY = { name: 'tiny', id: 31, subnets: ['10.73.0.0/30'], mtu: 1400, multicast: true, broadcast: true };
const CNI_PATH = '/usr/lib/cni';

let agent: TestAgent;
const podNs = `${tag}p`;
const busyNs = `${tag}b`;
const holders = [`${tag}h1`, `${tag}h2`, `${tag}h3`, `${tag}h4`];

const conf = () => ({ cniVersion: '1.1.0', name: 'tiny', type: 'castnet', agentSocket: agent.socket });
// Each case gets its own container ID, so a leak of one case cannot fail another.
let containerId = 'bad-0';
const env = (over: Record<string, string | undefined> = {}) => ({
  CNI_CONTAINERID: containerId,
  CNI_NETNS: netnsPath(podNs),
  CNI_IFNAME: 'eth0',
  CNI_PATH,
  ...over,
});

async function add(ns: string, id: string): Promise<CniOutcome> {
  return invokeCni({
    command: 'ADD',
    stdin: conf(),
    env: env({ CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns) }),
  });
}

async function del(ns: string, id: string): Promise<CniOutcome> {
  return invokeCni({
    command: 'DEL',
    stdin: conf(),
    env: env({ CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns) }),
  });
}

/** What a failed request must not change: the node's veths and the pods' links. */
async function footprint(): Promise<string[]> {
  const node = (await veths(agent.nodeNs)).map((l) => `node:${l.ifname}`);
  const pods = await Promise.all(
    [podNs, busyNs].map(async (ns) => (await links(ns)).map((l) => `${ns}:${l.ifname}`)),
  );
  return [...node, ...pods.flat()].sort();
}

beforeAll(async () => {
  agent = await TestAgent.start({ tag, networks: [TINY] });
  for (const ns of [podNs, busyNs, ...holders]) await addNetns(ns);
  // An interface named eth0 already exists in this pod.
  await run('ip', ['-n', busyNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0peer']);
  // Hold one of the two addresses for the whole file.
  const held = await add(holders[0], 'bad-holder1');
  expect(held).toMatchObject({ status: 0 });
}, 60000);

afterAll(async () => {
  for (const [i, ns] of holders.entries()) await del(ns, `bad-holder${i + 1}`).catch(() => undefined);
  await agent?.destroy();
  for (const ns of [podNs, busyNs, ...holders]) await delNetns(ns);
});

interface BadCase {
  what: string;
  command?: string;
  stdin?: () => Record<string, unknown> | string;
  env?: () => Record<string, string | undefined>;
  code: number;
  /** Substrings of msg: the field and the reason. */
  msg: string[];
  /** Runs first; what it builds is undone by `after`. */
  before?: () => Promise<void>;
  after?: () => Promise<void>;
}

const cases: BadCase[] = [
  {
    what: 'malformed JSON',
    stdin: () => '{"cniVersion": "1.1.0", "name": ',
    code: 6,
    msg: ['stdin', 'not a valid JSON'],
  },
  {
    what: 'a JSON array for stdin',
    stdin: () => '["tiny"]',
    code: 6,
    msg: ['stdin', 'not a valid JSON object'],
  },
  {
    what: 'a missing name',
    stdin: () => ({ ...conf(), name: undefined }),
    code: 7,
    msg: ['name: is required'],
  },
  {
    what: 'a name of the wrong type',
    stdin: () => ({ ...conf(), name: 42 }),
    code: 7,
    msg: ['name: must be a string, not number 42'],
  },
  {
    what: 'another plugin type',
    stdin: () => ({ ...conf(), type: 'bridge' }),
    code: 7,
    msg: ['type: must be "castnet" (got "bridge")'],
  },
  {
    what: 'an mtu of the wrong type',
    stdin: () => ({ ...conf(), mtu: '1400' }),
    code: 7,
    msg: ['mtu: must be a number, not the string "1400"'],
  },
  {
    what: 'an mtu out of range',
    stdin: () => ({ ...conf(), mtu: 20 }),
    code: 7,
    msg: ['mtu: must be >= 68 (got 20)'],
  },
  {
    what: 'ipam that is not an object',
    stdin: () => ({ ...conf(), ipam: 'host-local' }),
    code: 7,
    msg: ['ipam: must be an object'],
  },
  {
    what: 'a malformed prevResult',
    stdin: () => ({ ...conf(), prevResult: { ips: [{ gateway: '10.73.0.1' }] } }),
    code: 7,
    msg: ['prevResult.ips[0].address: is required'],
  },
  {
    what: 'an unsupported cniVersion',
    stdin: () => ({ ...conf(), cniVersion: '0.3.1' }),
    code: 1,
    msg: ['cniVersion: "0.3.1" is not supported'],
  },
  {
    what: 'a cniVersions list with no supported version',
    stdin: () => ({ ...conf(), cniVersion: undefined, cniVersions: ['0.2.0', '2.0.0'] }),
    code: 1,
    msg: ['cniVersions: none of', 'is supported'],
  },
  {
    what: 'STATUS with a pre-1.1 config',
    command: 'STATUS',
    stdin: () => ({ ...conf(), cniVersion: '1.0.0' }),
    code: 1,
    msg: ['cniVersion: STATUS needs 1.1.0'],
  },
  {
    what: 'an unknown network',
    stdin: () => ({ ...conf(), network: 'nope' }),
    code: 7,
    msg: ['network: "nope" is not a network of node'],
  },
  {
    what: 'an unknown CNI_COMMAND',
    command: 'UPDATE',
    code: 4,
    msg: ['CNI_COMMAND: unknown command "UPDATE"'],
  },
  {
    what: 'a missing CNI_NETNS',
    env: () => env({ CNI_NETNS: undefined }),
    code: 4,
    msg: ['CNI_NETNS: required for ADD but not set'],
  },
  {
    what: 'a missing CNI_IFNAME',
    env: () => env({ CNI_IFNAME: undefined }),
    code: 4,
    msg: ['CNI_IFNAME: required for ADD but not set'],
  },
  {
    what: 'a missing CNI_CONTAINERID',
    env: () => env({ CNI_CONTAINERID: undefined }),
    code: 4,
    msg: ['CNI_CONTAINERID: required for ADD but not set'],
  },
  {
    what: 'a netns that does not exist',
    env: () => env({ CNI_NETNS: netnsPath(`${tag}gone`) }),
    code: 4,
    msg: ['CNI_NETNS:', 'does not exist'],
  },
  {
    what: 'an ifname longer than the kernel allows',
    env: () => env({ CNI_IFNAME: 'eth0-much-too-long' }),
    code: 4,
    msg: ['CNI_IFNAME: "eth0-much-too-long" is longer than 15 characters'],
  },
  {
    what: 'an ifname already in use',
    env: () => env({ CNI_NETNS: netnsPath(busyNs) }),
    code: 101,
    msg: ['CNI_IFNAME: interface "eth0" already exists'],
  },
  {
    what: 'an invalid MAC in runtimeConfig',
    stdin: () => ({ ...conf(), runtimeConfig: { mac: '02:00:00:00:00' } }),
    code: 102,
    msg: ['runtimeConfig.mac: "02:00:00:00:00" is not a MAC address'],
  },
  {
    what: 'a multicast MAC in CNI_ARGS',
    env: () => env({ CNI_ARGS: 'MAC=01:00:5e:00:00:01' }),
    code: 102,
    msg: ['CNI_ARGS: MAC:', 'is a multicast MAC address'],
  },
  {
    what: 'an unknown CNI_ARGS key',
    env: () => env({ CNI_ARGS: 'K8S_POD_NAME=p;COLOR=red' }),
    code: 2,
    msg: ['CNI_ARGS: unknown key "COLOR"', 'IgnoreUnknown=1'],
  },
  {
    what: 'a CNI_ARGS item without "="',
    env: () => env({ CNI_ARGS: 'K8S_POD_NAME' }),
    code: 4,
    msg: ['CNI_ARGS: "K8S_POD_NAME" is not a KEY=VALUE pair'],
  },
  {
    what: 'a delegated IPAM plugin that does not exist',
    stdin: () => ({ ...conf(), ipam: { type: 'no-such-ipam' } }),
    code: 104,
    msg: ['ipam.type: plugin "no-such-ipam" not found in CNI_PATH'],
  },
  {
    what: 'oversized stdin',
    stdin: () => JSON.stringify({ ...conf(), pad: 'x'.repeat(1 << 20) }),
    code: 7,
    msg: ['stdin: network configuration exceeds the 1048576-byte limit'],
  },
  {
    what: 'a missing agent socket',
    stdin: () => ({ ...conf(), agentSocket: `${agent.dir}/run/missing.sock` }),
    code: 11,
    msg: ['castnet agent not reachable at', 'missing.sock', 'try again later'],
  },
  {
    what: 'an exhausted pool',
    // The failures above must not have held the pool's last free address: this ADD takes it.
    before: async () => expect(await add(holders[1], 'bad-holder2')).toMatchObject({ status: 0 }),
    after: async () => expect(await del(holders[1], 'bad-holder2')).toMatchObject({ status: 0 }),
    code: 100,
    msg: ['10.73.0.0/30'],
  },
];

describe('bad input through castnet-cni and the agent', () => {
  it.each(cases.map((c, i) => [c.what, c, i] as const))('%s', async (_what, c, i) => {
    containerId = `bad-${i}`;
    await c.before?.();
    const baseline = await footprint();
    try {
      const out = await invokeCni({
        command: c.command ?? 'ADD',
        stdin: c.stdin?.() ?? conf(),
        env: c.env?.() ?? env(),
      });
      expect(out.status).toBe(1);
      expect(out.json).toEqual({
        cniVersion: expect.any(String),
        code: c.code,
        msg: expect.any(String),
        details: expect.any(String),
      });
      for (const part of c.msg) expect(out.json?.msg).toContain(part);
      expect(await footprint()).toEqual(baseline);
    } finally {
      await c.after?.();
    }
  });

  it('holds no address after the failures: the freed address is handed out again', async () => {
    expect(await add(holders[2], 'bad-holder3')).toMatchObject({ status: 0 });
    expect((await veths(agent.nodeNs)).length).toBe(2);
  });

  // A failed ADD whose delegated IPAM plugin is missing must not leave a record that pins the
  // attachment: the runtime's DEL succeeds and a retried ADD works once the config is fixed.
  it('lets the runtime DEL and retry an ADD that failed in the wiring, once the cause is fixed', async () => {
    // The tiny pool is full after the previous test: free one address for the retry.
    containerId = 'bad-holder3';
    expect(
      await invokeCni({ command: 'DEL', stdin: conf(), env: env({ CNI_NETNS: netnsPath(holders[2]) }) }),
    ).toMatchObject({ status: 0 });
    containerId = 'bad-retry';
    const broken = { ...conf(), ipam: { type: 'no-such-ipam' } };
    // docs/endpoints.md: a failed delegated IPAM is code 104.
    const failed = await invokeCni({ command: 'ADD', stdin: broken, env: env() });
    expect(failed).toMatchObject({ status: 1, json: { code: 104 } });
    expect(failed.json?.msg).toContain('no-such-ipam');
    // The runtime cleans up with the config it has, then retries once the config is fixed.
    expect(await invokeCni({ command: 'DEL', stdin: conf(), env: env() })).toMatchObject({ status: 0 });
    const retried = await invokeCni({
      command: 'ADD',
      stdin: conf(),
      env: env({ CNI_NETNS: netnsPath(holders[3]) }),
    });
    expect(retried.json?.msg ?? '').toBe('');
    expect(retried.status).toBe(0);
    expect(await invokeCni({ command: 'DEL', stdin: conf(), env: env() })).toMatchObject({ status: 0 });
  });
});
