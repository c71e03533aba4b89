// A corrupt or empty endpoint-table file must not crash-loop the agent: it is quarantined (kept aside
// with a timestamp and logged), the agent starts, and the lost endpoint is rebuilt from the kernel:
// the pod keeps its network, and its address is not handed to the next pod.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hostIfname } from '../../pkg/endpoint/names.js';
import { TestAgent } from '../harness/agent.js';
import { invokeCni, type CniOutcome } from '../harness/cni.js';
import { ipv4Of, netnsPath, netnsTag, pings, podNamespaces, veths } from '../harness/netns.js';

const tag = netnsTag('rcv');
const NET = { name: 'rcv', id: 78, subnets: ['10.78.0.0/24'], mtu: 1400, multicast: true, broadcast: true };

let agent: TestAgent;
const { pod, removeAll } = podNamespaces(tag);

function cni(command: string, ns: string, id: string): Promise<CniOutcome> {
  return invokeCni({
    command,
    stdin: { cniVersion: '1.1.0', name: NET.name, type: 'castnet', agentSocket: agent.socket },
    env: { CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
}

beforeAll(async () => {
  agent = await TestAgent.start({ tag, networks: [NET] });
}, 60000);

afterAll(async () => {
  await agent?.destroy();
  await removeAll();
});

test('garbage and empty state files are quarantined, the agent starts and rebuilds the endpoint from the kernel', async () => {
  const [a, b, c] = [await pod('a'), await pod('b'), await pod('c')];
  expect(await cni('ADD', a, 'rcv-a')).toMatchObject({ status: 0 });
  expect(await cni('ADD', b, 'rcv-b')).toMatchObject({ status: 0 });
  const [ipA] = await ipv4Of(a, 'eth0');
  const [ipB] = await ipv4Of(b, 'eth0');
  expect(await pings(a, ipB!)).toBe(true);

  await agent.kill('SIGKILL');
  const vethA = hostIfname('rcv-a', 'eth0');
  const garbage = Buffer.from('{"containerId":"rcv-a",\u0000\u00ff');
  writeFileSync(path.join(agent.stateDir, 'endpoints', `${vethA}.json`), garbage);
  writeFileSync(path.join(agent.stateDir, 'endpoint-meta.json'), '');
  await agent.restart();

  // Kept aside, with the bytes it held, and logged.
  const quarantine = path.join(agent.stateDir, 'quarantine');
  const kept = readdirSync(quarantine).sort();
  expect(kept).toEqual([
    expect.stringMatching(new RegExp(`^${vethA}\\.json\\.\\d{4}-\\d\\d-\\d\\dT`)),
    expect.stringMatching(/^endpoint-meta\.json\.\d{4}-\d\d-\d\dT/),
  ]);
  expect(readFileSync(path.join(quarantine, kept[0]!))).toEqual(garbage);
  expect(readFileSync(path.join(quarantine, kept[1]!), 'utf8')).toBe('');
  expect(agent.logs).toContain('quarantined an unusable state file');
  expect(agent.logs).toContain('rebuilt an endpoint from the kernel');

  // The pod whose record was lost keeps its veth and its network.
  expect((await veths(agent.nodeNs)).map((l) => l.ifname)).toContain(vethA);
  expect(await pings(a, ipB!)).toBe(true);
  expect(await pings(b, ipA!)).toBe(true);
  expect(await cni('CHECK', b, 'rcv-b')).toMatchObject({ status: 0 });
  // Its address is known to be in use: with the IPAM cursor lost too, a new pod still does not get it.
  expect(await cni('ADD', c, 'rcv-c')).toMatchObject({ status: 0 });
  const [ipC] = await ipv4Of(c, 'eth0');
  expect([ipA, ipB]).not.toContain(ipC);

  // The runtime's DEL of the lost pod removes its veth and the rebuilt record.
  expect(await cni('DEL', a, 'rcv-a')).toMatchObject({ status: 0 });
  expect((await veths(agent.nodeNs)).map((l) => l.ifname)).not.toContain(vethA);
  expect(readdirSync(path.join(agent.stateDir, 'endpoints')).sort()).toEqual(
    [hostIfname('rcv-b', 'eth0'), hostIfname('rcv-c', 'eth0')].map((n) => `${n}.json`).sort(),
  );
  for (const [ns, id] of [
    [b, 'rcv-b'],
    [c, 'rcv-c'],
  ] as const)
    expect(await cni('DEL', ns, id)).toMatchObject({ status: 0 });
  expect(await veths(agent.nodeNs)).toEqual([]);
}, 90000);
