// castnet-cni and the agent under load and across agent restarts: 30 simultaneous ADDs get distinct
// addresses and interfaces; while the agent is down ADD asks to retry and DEL succeeds, and the
// restarted agent's reconcile frees what the deferred DEL left.
import { TestAgent } from '../harness/agent.js';
import { invokeCni, type CniOutcome } from '../harness/cni.js';
import { delNetns, ipv4Of, links, netnsPath, netnsTag, podNamespaces, veths } from '../harness/netns.js';

const tag = netnsTag('life');
const WIDE = { name: 'wide', id: 76, subnets: ['10.76.0.0/16'], mtu: 1400, multicast: true, broadcast: true };
const TINY = { name: 'tiny', id: 77, subnets: ['10.77.0.0/30'], mtu: 1400, multicast: true, broadcast: true };
const CONCURRENT = 30;

let agent: TestAgent;
const { pod, removeAll } = podNamespaces(tag);

function cni(command: string, network: string, ns: string, id: string): Promise<CniOutcome> {
  return invokeCni({
    command,
    stdin: { cniVersion: '1.1.0', name: network, type: 'castnet', agentSocket: agent.socket },
    env: { CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
}

beforeAll(async () => {
  agent = await TestAgent.start({ tag, networks: [WIDE, TINY] });
}, 60000);

afterAll(async () => {
  await agent?.destroy();
  await removeAll();
});

describe('castnet-cni with a real agent', () => {
  it(`gives ${CONCURRENT} simultaneous ADDs distinct addresses and interfaces, and DELs them all`, async () => {
    const pods = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => pod(`c${i}`)));
    const adds = await Promise.all(pods.map((ns, i) => cni('ADD', 'wide', ns, `conc-${i}`)));
    for (const out of adds) expect(out).toMatchObject({ status: 0 });

    const resultIps = adds.map((out) => (out.json?.ips as Array<{ address: string }>)[0].address);
    expect(new Set(resultIps).size).toBe(CONCURRENT);
    const podIps = await Promise.all(pods.map(async (ns) => (await ipv4Of(ns, 'eth0'))[0]));
    expect(podIps.map((ip) => `${ip}/16`)).toEqual(resultIps);
    const hostVeths = (await veths(agent.nodeNs)).map((l) => l.ifname);
    expect(new Set(hostVeths).size).toBe(CONCURRENT);

    const dels = await Promise.all(pods.map((ns, i) => cni('DEL', 'wide', ns, `conc-${i}`)));
    for (const out of dels) expect(out).toMatchObject({ status: 0 });
    expect(await veths(agent.nodeNs)).toEqual([]);
  }, 120000);

  it('defers a DEL made while the agent is down to its reconcile at start', async () => {
    // The two-address pool is full.
    const [a, b, c] = [await pod('a'), await pod('b'), await pod('c')];
    expect(await cni('ADD', 'tiny', a, 'life-a')).toMatchObject({ status: 0 });
    expect(await cni('ADD', 'tiny', b, 'life-b')).toMatchObject({ status: 0 });
    expect(await cni('ADD', 'tiny', c, 'life-c')).toMatchObject({ status: 1, json: { code: 100 } });

    await agent.kill('SIGKILL');
    const down = await cni('ADD', 'tiny', c, 'life-c');
    expect(down).toMatchObject({ status: 1, json: { code: 11 } });
    expect(down.json?.msg).toContain(agent.socket);
    // The pod goes away while the agent is down; the runtime's DEL succeeds.
    await delNetns(a);
    expect(await cni('DEL', 'tiny', a, 'life-a')).toMatchObject({ status: 0, stdout: '' });

    await agent.restart();
    // a's address is free again, b's endpoint survived the restart.
    expect(await cni('ADD', 'tiny', c, 'life-c')).toMatchObject({ status: 0 });
    expect(await cni('CHECK', 'tiny', b, 'life-b')).toMatchObject({ status: 0 });
    expect((await links(c)).map((l) => l.ifname)).toContain('eth0');
    for (const [ns, id] of [
      [b, 'life-b'],
      [c, 'life-c'],
    ]) {
      expect(await cni('DEL', 'tiny', ns, id)).toMatchObject({ status: 0 });
    }
    expect(await veths(agent.nodeNs)).toEqual([]);
  }, 60000);
});
