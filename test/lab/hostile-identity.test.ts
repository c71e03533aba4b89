// Who may reach castnet's ports and who may be an endpoint, on a real two-node lab (real agents, the
// real castnet-cni): datagrams from an unregistered underlay host are dropped by the agent's
// nftables filter, for every castnet port, and counted there; unknown unicast reaches no endpoint,
// from the VXLAN port or from a local pod; an ADD asking for another node's endpoint's MAC or IP is
// refused and that endpoint keeps receiving; a pod that only carries a VM's virt-launcher labels
// does not become the VM; a stopped VM's reserved address is refused to another pod and given back
// to the VM's next pod; a node registration with an address that is not the node's is refused; a
// pod's forged unicast (by source, ARP sender, VLAN-tagged or not) and forged neighbour discovery
// (advertisements for another's address or MAC, router advertisements) reach no one.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Lab } from '../../pkg/lab/runner.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import { UNDERLAY_PORT } from '../../pkg/lab/topology.js';
import { EmbeddedLookupClient } from '../../pkg/lookup/embedded/client.js';
import { run, runIn } from '../../pkg/sys/exec.js';
import { VXLAN_PORT } from '../../pkg/agent/unicast/overlay.js';
import { FILTER_COUNTER, FILTER_TABLE } from '../../pkg/agent/underlay/filter.js';
import { GUARD_COUNTER, GUARD_TABLE } from '../../pkg/agent/unicast/source-guard.js';
import { ARP_REQUEST, buildArpReply } from '../../pkg/frame/build.js';
import {
  ICMPV6_NEIGHBOR_ADVERT,
  ICMPV6_ROUTER_ADVERT,
  ICMPV6_ROUTER_SOLICIT,
} from '../../pkg/frame/ethernet.js';
import { waitFor } from '../../pkg/base/async.js';
import {
  addUnderlayHost,
  arrived as arrivedAt,
  drops,
  injectFrames,
  sendDatagrams,
  udpFrame,
} from '../harness/underlay.js';
import { ndpFrame } from '../harness/ndp.js';

const root = join(import.meta.dirname, '../..');
const HEALTH_PORT = 4792;
const STRANGER = '198.18.0.99';

const labFile = parseLabFile(`
nodes: 2
networks:
  - { name: blue, id: 100, subnets: [10.30.0.0/16] }
  - { name: green, id: 200, subnets: [10.31.0.0/16, 'fd31::/64'] }
pods:
  - { name: a1, node: 0, network: blue }
  - { name: a2, node: 0, network: blue }
  - { name: b1, node: 1, network: blue }
  - { name: v1, node: 1, network: blue, vmi: vm1 }
  - { name: c1, node: 0, network: green }
  - { name: c2, node: 0, network: green }
  - { name: d1, node: 1, network: green }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`);

let lab: Lab;

beforeAll(async () => {
  lab = new Lab(labFile, { castnetBin: join(root, 'bin/castnet'), cniBin: join(root, 'bin/castnet-cni') });
  await lab.start();
}, 120_000);

afterAll(async () => {
  await lab?.dispose();
}, 60_000);

/** A VXLAN datagram (VNI `vni`) carrying `frame`. */
function vxlan(vni: number, frame: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 0x08;
  h.writeUIntBE(vni, 4, 3);
  return Buffer.concat([h, frame]);
}

/** The packets an nftables counter of node `node` counted so far. */
async function nftCounter(node: number, table: string, counter: string): Promise<number> {
  const { stdout } = await runIn(lab.topology.nodes[node]!.ns, 'nft', [
    ...['-j', 'list', 'counter'],
    ...table.split(' '),
    counter,
  ]);
  const parsed = JSON.parse(stdout) as { nftables: { counter?: { packets: number } }[] };
  return parsed.nftables.find((o) => o.counter)!.counter!.packets;
}

/** The packets the node's underlay filter dropped so far. */
const filtered = (node: number): Promise<number> => nftCounter(node, `inet ${FILTER_TABLE}`, FILTER_COUNTER);

/** The frames the node's source guard dropped so far (pkg/agent/unicast/source-guard.ts). */
const spoofed = (node: number): Promise<number> => nftCounter(node, GUARD_TABLE, GUARD_COUNTER);

const arrived = (pod: string, token: string): Promise<number> => arrivedAt(lab, pod, token);

const token = (what: string): string => `${what}-${randomBytes(6).toString('hex')}`;

/** A host on the underlay that is no node: a namespace on the underlay bridge with STRANGER. */
const addStranger = (): Promise<string> => addUnderlayHost(lab, 'x', STRANGER);

/** castnet-cni ADD of a fresh pod namespace on node `node`, with `conf` merged in; its JSON answer. */
async function cniAdd(
  node: number,
  name: string,
  extra: Record<string, unknown>,
): Promise<{ code: number; out: { code?: number; msg?: string } }> {
  const ns = `${lab.topology.id}-p-${name}`;
  await run('ip', ['netns', 'add', ns]);
  const conf = {
    cniVersion: '1.1.0',
    name: 'blue',
    type: 'castnet',
    network: 'blue',
    agentSocket: join(lab.topology.dir, `node-${node}`, 'agent.sock'),
    ...extra,
  };
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: randomBytes(16).toString('hex'),
    CNI_NETNS: `/run/netns/${ns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=${name}`,
    CNI_PATH: '/usr/lib/cni',
  };
  return new Promise((resolve, reject) => {
    const child = spawn(join(root, 'bin/castnet-cni'), [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.on('error', reject);
    child.on('exit', (code) =>
      resolve({ code: code ?? -1, out: JSON.parse(Buffer.concat(out).toString() || '{}') }),
    );
    child.stdin.end(JSON.stringify(conf));
  });
}

describe('underlay: only registered nodes reach castnet ports', () => {
  it('drops and counts datagrams from an unregistered host on the data, VXLAN and health ports', async () => {
    const stranger = await addStranger();
    const n0 = lab.topology.nodes[0]!;
    const n1 = lab.topology.nodes[1]!;
    const a1 = lab.podInfo('a1');
    const b1 = lab.podInfo('b1');
    const stats = (await lab.agentStats(1)) as { underlayFilter: { state: string } };
    expect(stats.underlayFilter.state).toBe('active');
    const before = await filtered(1);
    const t = token('vxlan-stranger');
    // Unicast into b1 through the kernel VXLAN port: b1's MAC is known, so only the sender check stops it.
    await sendDatagrams(stranger, STRANGER, n1.address, [vxlan(100, udpFrame(a1, b1, t))], VXLAN_PORT);
    await sendDatagrams(stranger, STRANGER, n1.address, [Buffer.from(`CN-${t}`)], UNDERLAY_PORT);
    await sendDatagrams(stranger, STRANGER, n1.address, [Buffer.from(`probe-${t}`)], HEALTH_PORT);
    await waitFor(async () => (await filtered(1)) >= before + 3, { what: 'three datagrams filtered' });
    // Positive control: the same VXLAN datagram from a registered node is delivered, once.
    const c = token('vxlan-node');
    await sendDatagrams(n0.ns, n0.address, n1.address, [vxlan(100, udpFrame(a1, b1, c))], VXLAN_PORT);
    expect(await arrived('b1', c)).toBe(1);
    expect(lab.receivedBy('b1', t)).toBe(0);
    expect(await filtered(1)).toBe(before + 3);
    // The data plane never saw them: dropped before any socket.
    const drops = ((await lab.agentStats(1)) as { dataplane: { drops: Record<string, number> } }).dataplane
      .drops;
    expect(drops['unknown-sender'] ?? 0).toBe(0);
  });

  it('floods unknown unicast to no endpoint, from the VXLAN port or from a local pod', async () => {
    const n0 = lab.topology.nodes[0]!;
    const n1 = lab.topology.nodes[1]!;
    const a1 = lab.podInfo('a1');
    const b1 = lab.podInfo('b1');
    const unknown = { mac: '02:99:99:99:99:99', ip: b1.ip };
    const t = token('unknown-unicast');
    const c = token('known-unicast');
    // From a registered node through VXLAN: to an unknown MAC, then (the control) to b1's.
    await sendDatagrams(
      n0.ns,
      n0.address,
      n1.address,
      [vxlan(100, udpFrame(a1, unknown, t)), vxlan(100, udpFrame(a1, b1, c))],
      VXLAN_PORT,
    );
    expect(await arrived('b1', c)).toBe(1);
    // From a local pod: a1 to an unknown MAC (a2 shares the bridge), then to a2 itself.
    const a2 = lab.podInfo('a2');
    const tl = token('unknown-local');
    const cl = token('known-local');
    await injectFrames(a1.ns, [udpFrame(a1, { mac: unknown.mac, ip: a2.ip }, tl), udpFrame(a1, a2, cl)]);
    expect(await arrived('a2', cl)).toBe(1);
    for (const pod of ['a1', 'a2', 'b1', 'v1']) {
      expect(lab.receivedBy(pod, t)).toBe(0);
      expect(lab.receivedBy(pod, tl)).toBe(0);
    }
  });
});

describe('unicast sources', () => {
  // The kernel moves a frame's 802.1Q tag into its metadata before the bridge: a tagged frame must meet
  // the same checks. A second tag would hide the inner headers, so the guard drops what carries two.
  it.each([{ vlans: [] }, { vlans: [7] }, { vlans: [7, 8] }])(
    'drops unicast a pod sends from an address or a MAC not its own, on its node and across nodes, and counts it (802.1Q tags: $vlans)',
    async ({ vlans }) => {
      const a1 = lab.podInfo('a1');
      const a2 = lab.podInfo('a2');
      const b1 = lab.podInfo('b1');
      const before = await spoofed(0);
      const forgedIp = { mac: a1.mac, ip: b1.ip };
      const forgedMac = { mac: '02:66:66:66:66:66', ip: a1.ip };
      const t = [token('forged-ip-local'), token('forged-ip-remote'), token('forged-mac')];
      if (vlans.length > 1) t.push(token('qinq-own'));
      const c = [token('own-local'), token('own-remote')];
      await injectFrames(a1.ns, [
        ...[forgedIp, forgedIp, forgedMac].map((src, i) =>
          udpFrame(src, i === 1 ? b1 : a2, t[i]!, 64, vlans),
        ),
        ...(vlans.length > 1 ? [udpFrame(a1, a2, t[3]!, 64, vlans)] : []),
        // The controls, after them: the same path with a1's own addresses (and at most one tag).
        udpFrame(a1, a2, c[0]!, 64, vlans.slice(0, 1)),
        udpFrame(a1, b1, c[1]!, 64, vlans.slice(0, 1)),
      ]);
      expect(await arrived('a2', c[0]!)).toBe(1);
      expect(await arrived('b1', c[1]!)).toBe(1);
      for (const pod of ['a1', 'a2', 'b1', 'v1'])
        for (const x of t) expect({ pod, x, n: lab.receivedBy(pod, x) }).toEqual({ pod, x, n: 0 });
      expect(await spoofed(0)).toBe(before + t.length);
    },
  );

  it("drops a unicast ARP reply that claims another endpoint's address", async () => {
    const a1 = lab.podInfo('a1');
    const a2 = lab.podInfo('a2');
    const b1 = lab.podInfo('b1');
    const before = await spoofed(0);
    // a1 answers a2 as if it held b1's address (an ARP reply needs no request to be sent).
    const claim = (ip: string) =>
      buildArpReply(
        { op: ARP_REQUEST, senderMac: a2.mac, senderIp: a2.ip, targetMac: '00:00:00:00:00:00', targetIp: ip },
        a1.mac,
      );
    // Its own address first: frames from one pod are handled in order, so once the forged reply is
    // counted, the genuine one has passed (uncounted).
    await injectFrames(a1.ns, [claim(a1.ip), claim(b1.ip)]);
    await waitFor(async () => ((await spoofed(0)) >= before + 1 ? true : undefined), {
      what: "the guard to count a1's forged ARP reply",
      timeoutMs: 5_000,
    });
    expect(await spoofed(0)).toBe(before + 1);
  });
});

describe('neighbour discovery', () => {
  /** Pod `name` on the dual-stack network, with its IPv6 address. */
  const station = (name: string) => {
    const p = lab.podInfo(name);
    const ep = lab.directory.endpoints.find((e) => e.mac === p.mac)!;
    return { ...p, ip6: ep.ips.find((a) => a.includes(':'))!.split('/')[0]! };
  };
  const ALL_NODES = { mac: '33:33:00:00:00:01', ip: 'ff02::1' };

  it("keeps a neighbour's cache true: advertisements claiming another endpoint's address or MAC, and router advertisements, are dropped, unicast and multicast", async () => {
    const c1 = station('c1');
    const c2 = station('c2');
    const d1 = station('d1');
    // c2 learns d1's MAC the usual way: neighbour discovery across nodes, through the guard.
    await runIn(c2.ns, 'ping', ['-6', '-c', '1', '-W', '5', d1.ip6]);
    const entry = async () =>
      (await runIn(c2.ns, 'ip', ['-6', 'neigh', 'show', d1.ip6, 'dev', 'eth0'])).stdout;
    expect(await entry()).toContain(d1.mac);
    const guardBefore = await spoofed(0);
    const dropsBefore = await drops(lab, 0);
    const to = (dst: { mac: string; ip: string }) => ({ srcMac: c1.mac, dstMac: dst.mac, dst: dst.ip });
    const na = (dst: { mac: string; ip: string }, target: string, lla: string, src = c1.ip6) =>
      ndpFrame({ type: ICMPV6_NEIGHBOR_ADVERT, ...to(dst), src, target, lla: [lla], override: true });
    const ra = (dst: { mac: string; ip: string }) =>
      ndpFrame({ type: ICMPV6_ROUTER_ADVERT, ...to(dst), src: 'fe80::c1', lla: [c1.mac] });
    const c2Station = { mac: c2.mac, ip: c2.ip6 };
    await injectFrames(c1.ns, [
      // Unicast, which the kernel switches (the guard): d1's address is at c1's MAC; c1's address
      // is at d1's MAC (from its own address, and from the unspecified one); c1 is a router; c1
      // solicits routers from d1's MAC.
      na(c2Station, d1.ip6, c1.mac),
      na(c2Station, c1.ip6, d1.mac),
      na(c2Station, c1.ip6, d1.mac, '::'),
      ra(c2Station),
      ndpFrame({ type: ICMPV6_ROUTER_SOLICIT, ...to(c2Station), src: c1.ip6, lla: [d1.mac] }),
      // Multicast, which the data plane forwards: the same claims to all nodes.
      na(ALL_NODES, d1.ip6, c1.mac),
      ra(ALL_NODES),
      // The control: c1 advertising its own address with its own MAC passes.
      na(c2Station, c1.ip6, c1.mac),
    ]);
    const dropped = async () => {
      const d = await drops(lab, 0);
      const more = (reason: string) => (d[reason] ?? 0) - (dropsBefore[reason] ?? 0);
      return {
        guard: (await spoofed(0)) - guardBefore,
        spoofedIp: more('spoofed-ip'),
        rogueRouter: more('rogue-router'),
      };
    };
    // The multicast ones meet the guard too (on their way into the bridge, after the data plane's
    // capture): seven for the guard, and the data plane's own two.
    const want = { guard: 7, spoofedIp: 1, rogueRouter: 1 };
    await waitFor(async () => (JSON.stringify(await dropped()) === JSON.stringify(want) ? true : undefined), {
      what: 'the forged neighbour discovery messages dropped and counted',
      timeoutMs: 5_000,
    }).catch(() => undefined);
    // What the user cares about: c2 still sends to d1's MAC, and has no route through c1.
    expect(await entry()).toContain(d1.mac);
    expect((await runIn(c2.ns, 'ip', ['-6', 'route', 'show', 'default'])).stdout.trim()).toBe('');
    expect(await dropped()).toEqual(want);
    const t = await lab.sendTo('c2', d1.ip);
    expect(await arrived('d1', t)).toBe(1);
  });
});

describe('identity', () => {
  it('refuses an ADD asking for another node’s endpoint’s MAC or IP, and that endpoint keeps receiving', async () => {
    const b1 = lab.podInfo('b1');
    const mac = await cniAdd(0, 'takes-mac', { runtimeConfig: { mac: b1.mac } });
    expect(mac.code).not.toBe(0);
    expect(mac.out.code).toBe(102);
    expect(mac.out.msg).toContain(
      `runtimeConfig.mac: ${b1.mac} is already used by endpoint ${b1.endpointId}`,
    );
    const ip = await cniAdd(0, 'takes-ip', { runtimeConfig: { ips: [`${b1.ip}/16`] } });
    expect(ip.code).not.toBe(0);
    expect(ip.out.code).toBe(105);
    expect(ip.out.msg).toContain(`runtimeConfig.ips: ${b1.ip} is already used by endpoint ${b1.endpointId}`);
    const holders = lab.directory.endpoints.filter((e) => e.mac === b1.mac || e.ips.includes(b1.ip));
    expect(holders.map((e) => `${e.node}/${e.endpointId}`)).toEqual([
      `${lab.topology.nodes[1]!.name}/${b1.endpointId}`,
    ]);
    // b1 still receives unicast from a1 (across nodes), exactly once.
    const t = await lab.sendTo('a1', b1.ip);
    expect(await arrived('b1', t)).toBe(1);
  });

  it('gives a VM’s identity only to a pod the VMI’s status names', async () => {
    const v1 = lab.podInfo('v1');
    const vmEndpoint = lab.directory.endpoints.find((e) => e.mac === v1.mac)!;
    expect(vmEndpoint.vm).toEqual({ namespace: 'lab', name: 'vm1' });
    // A pod on node 0 with vm1's virt-launcher labels, which the VMI's status does not name.
    await expect(
      lab.addLabPod('impostor', 0, 'blue', undefined, { vmi: 'vm1', namedByVmi: false }),
    ).rejects.toThrow(
      /carries the virt-launcher labels of VMI lab\/vm1, but the VMI's status names it neither/,
    );
    const holders = lab.directory.endpoints.filter((e) => e.mac === v1.mac || e.ips.includes(v1.ip));
    expect(holders).toEqual([vmEndpoint]);
    const t = await lab.sendTo('a1', v1.ip);
    expect(await arrived('v1', t)).toBe(1);
  }, 60_000);

  it('keeps a stopped VM’s address for it: another pod asking for it is refused, the VM’s next pod gets it', async () => {
    const v1 = lab.podInfo('v1');
    await lab.runScenario({ name: 'stop-vm', steps: [{ kind: 'removePod', pod: 'v1' }] });
    expect(lab.directory.endpoints.filter((e) => e.ips.includes(v1.ip))).toEqual([]);
    const taken = await cniAdd(0, 'takes-vm-ip', { runtimeConfig: { ips: [`${v1.ip}/16`] } });
    expect(taken.code).not.toBe(0);
    expect(taken.out.code).toBe(105);
    expect(taken.out.msg).toBe(
      `runtimeConfig.ips: ${v1.ip}/16 is reserved for VM lab/vm1 on network "blue" until that VM is deleted`,
    );
    // The VM starts again, on the other node: its new pod gets its address.
    await lab.addLabPod('v1-again', 0, 'blue', undefined, { vmi: 'vm1' });
    expect(lab.podInfo('v1-again').ip).toBe(v1.ip);
    const t = await lab.sendTo('b1', v1.ip);
    expect(await arrived('v1-again', t)).toBe(1);
  }, 60_000);

  it('refuses a node registration whose underlay address is not the node’s own', async () => {
    const n1 = lab.topology.nodes[1]!;
    const client = new EmbeddedLookupClient(join(lab.topology.dir, 'lookup.sock'));
    try {
      const record = lab.directory.nodes.find((n) => n.name === n1.name)!;
      await expect(client.registerNode({ ...record, address: STRANGER })).rejects.toThrow(
        `address: ${STRANGER} is not an address of node ${n1.name}`,
      );
    } finally {
      await client.dispose();
    }
    expect(lab.directory.nodes.find((n) => n.name === n1.name)!.address).toBe(n1.address);
    const t = await lab.sendTo('a1', lab.podInfo('b1').ip);
    expect(await arrived('b1', t)).toBe(1);
  });
});
