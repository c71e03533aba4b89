// Real workload software (issue 13) on the real cluster, through the user's whole path: `helm install`
// of castnet, Deployments whose pods kubelet and containerd start, Multus calling castnet-cni for the
// pods' net1, allowed address pairs declared in the Multus annotation's cni-args. The same scenarios
// run on the lab in test/workloads/, with the same helpers (./workloads/*.ts there).
//
// How the software runs: the workload image holds only sh, ip, socat and a few traffic tools, so
// keepalived, avahi-daemon, Hazelcast's JVM, Cyclone DDS (the venv's Python) and the stream's sender
// and members (the test's own sockets) are the host's, run from the host inside each kubelet-started
// pod's network namespace (`nsenter -t <sandbox pid> -n`, ../harness/where.ts). The packets' path is the user's: the pod's net1 from
// castnet-cni, its node's castnet agent, the underlay between nodes. Only the mount namespace
// differs from a container's: the programs and their files are the host's, as the lab's are.
import { jest } from '@jest/globals';
import { waitFor as poll } from '../../pkg/base/async.js';
import { toDisposable } from '../../pkg/base/lifecycle.js';
import { stop } from '../../pkg/sys/exec.js';
import { UnderlaySocket } from '../../pkg/underlay/udp.js';
import {
  apply,
  castnetTestbed,
  type CastnetTestbed,
  imageRef,
  net1Address,
  type NetworkSelection,
  type PodInfo,
  podWhere,
  type RealCluster,
  waitFor,
  waitPods,
  workloadDeployment,
} from '../harness/cluster.js';
import { PodProcess } from '../harness/pod-process.js';
import { runWhere, type Where } from '../harness/where.js';
import { AvahiPod, publishAndResolve, resolvedAs } from '../workloads/avahi.js';
import {
  awaitEvent,
  ddsParticipant,
  discoversExactly,
  discoveryTimes,
  everySampleOnce,
} from '../workloads/cyclonedds.js';
import { HazelcastMember, requireHazelcast } from '../workloads/hazelcast.js';
import { askName, echoService, Keepalived } from '../workloads/keepalived.js';
import {
  exactlyOnceInOrder,
  sendStream,
  sendWarmUp,
  StreamMembers,
  type StreamSpec,
} from '../workloads/stream.js';

jest.setTimeout(300_000);

const SUBNET = '10.161.0.0/16';
const VIP = '10.161.200.1';
/** An address no pod declared: announcing it must reach no one. */
const UNDECLARED = '10.161.200.2';
const ECHO_PORT = 7000;
const STREAM: StreamSpec = { group: '239.20.1.1', port: 5100, rate: 2000, count: 10_000, run: 1 };

/** Pod roles: name → node (1-3); `vip`: it declares the VIP; `red`: it is on the other network. */
const ROLES = {
  // keepalived: two instances, a client on the third node, a pod that declared nothing.
  ka1: { node: 1, vip: true },
  ka2: { node: 2, vip: true },
  client: { node: 3 },
  rogue: { node: 2 },
  // The stream: the sender, five members on three nodes; m1, m2a, m3a run avahi too.
  src: { node: 1 },
  m1: { node: 1 },
  m2a: { node: 2 },
  m2b: { node: 2 },
  m3a: { node: 3 },
  m3b: { node: 3 },
  // Hazelcast: a member on each node, and one on another tenant's network. Cyclone DDS runs in
  // m1 (the writer), m2a and m3a (the readers).
  hz1: { node: 1 },
  hz2: { node: 2 },
  hz3: { node: 3 },
  other: { node: 2, red: true },
} as const;
type Role = keyof typeof ROLES;

let bed: CastnetTestbed | undefined;
let c: RealCluster;
let ns: string;
const pods = {} as Record<Role, PodInfo>;
const where = {} as Record<Role, Where>;
const owned: { dispose(): unknown }[] = [];
function own<T extends { dispose(): unknown }>(x: T): T {
  owned.push(x);
  return x;
}

beforeAll(async () => {
  bed = await castnetTestbed('wl');
  ({ c, ns } = bed);
  const blue = bed.network({ suffix: 'blue', networkID: 1161, subnet: SUBNET });
  const red = bed.network({ suffix: 'red', networkID: 1162, subnet: '10.162.0.0/16' });
  const image = await imageRef('workload');
  // The VIP is declared as a user does: the network selection element's cni-args (docs/endpoints.md).
  const declaringVip: NetworkSelection = {
    name: blue.name,
    'cni-args': { allowedAddressPairs: [{ ipAddress: VIP }] },
  };
  await apply(c, [
    ...blue.objects,
    ...red.objects,
    ...Object.entries(ROLES).map(([name, r]) =>
      workloadDeployment({
        namespace: ns,
        name,
        node: c.nodes[r.node - 1],
        image,
        networks: ['red' in r ? red.name : 'vip' in r ? declaringVip : blue.name],
      }),
    ),
  ]);
  for (const name of Object.keys(ROLES) as Role[]) {
    [pods[name]] = await waitPods(c, ns, `app=${name}`, 1);
    where[name] = await podWhere(c, ns, pods[name]);
  }
  // Three nodes, as scheduled.
  expect(new Set(Object.values(pods).map((p) => p.node)).size).toBe(3);
}, 600_000);

afterAll(async () => {
  for (const x of owned.reverse()) await x.dispose();
  await bed?.dispose();
}, 300_000);

describe('keepalived (VRRP) with the VIP declared as an allowed address pair in cni-args', () => {
  const instances = {} as Record<'ka1' | 'ka2', Keepalived>;
  const askVip = () => askName(where.client, VIP, ECHO_PORT);
  const states = () => `ka1 ${instances.ka1.state()}, ka2 ${instances.ka2.state()}`;

  beforeAll(() => {
    for (const [name, priority] of [
      ['ka1', 150],
      ['ka2', 100],
    ] as const) {
      instances[name] = own(
        new Keepalived(name, where[name], {
          priority,
          iface: 'net1',
          vip: VIP,
          prefixLen: 16,
          echoPort: ECHO_PORT,
        }),
      );
      instances[name].start();
    }
  });

  it('elects exactly one master, which alone holds the VIP, and a client on the third node reaches it', async () => {
    await waitFor(() => instances.ka1.state() === 'MASTER' && instances.ka2.state() === 'BACKUP', {
      what: 'ka1 MASTER and ka2 BACKUP',
      timeoutMs: 60_000,
      observed: states,
    });
    expect(await instances.ka1.holdsVip()).toBe(true);
    expect(await instances.ka2.holdsVip()).toBe(false);
    expect(await waitFor(askVip, { what: `an answer from ${VIP}` })).toBe('ka1');
    // Still one master once the client is served.
    expect(states()).toBe('ka1 MASTER, ka2 BACKUP');
  });

  it('fails over when the master dies: the client reaches the VIP through the new master', async () => {
    const killedAt = performance.now();
    // Dies without resigning: the backup waits out VRRP's master-down interval.
    instances.ka1.crash();
    await waitFor(async () => (await askVip()) === 'ka2', {
      what: `${VIP} answered by ka2`,
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    const failoverMs = performance.now() - killedAt;
    await waitFor(() => instances.ka2.state() === 'MASTER', { what: 'ka2 MASTER', observed: states });
    console.log(
      `keepalived failover on the cluster: the client on ${pods.client.node} reached ${VIP} through the new master (${pods.ka2.node}) ${Math.round(failoverMs)} ms after the master (${pods.ka1.node}) was killed (advert_int 1)`,
    );
    // From now on every connection reaches the new master, never the old one (whose VIP stays on
    // its interface, as after a real crash).
    expect(await instances.ka1.holdsVip()).toBe(true);
    for (let i = 0; i < 10; i++) expect(await askVip()).toBe('ka2');
  });

  // castnet checks the source of every frame a pod sends: the data plane the multicast, broadcast
  // and ARP frames it forwards, the node's source guard the unicast the kernel switches
  // (docs/security.md).
  describe('anti-spoofing stays on for a pod that declared nothing', () => {
    /** What the client's net1 receives of the rogue pod's ARP. */
    let capture: PodProcess;
    /** `who-has X [(target MAC)] tell X`: an announcement of X (a gratuitous ARP). */
    const announcements = (address: string) => {
      const a = address.replaceAll('.', '\\.');
      const garp = new RegExp(`who-has ${a} (\\(\\S+\\) )?tell ${a},`);
      return capture.lines.filter((l) => garp.test(l.text)).length;
    };

    beforeAll(async () => {
      const echo = echoService(where.rogue, 'rogue', ECHO_PORT);
      own(toDisposable(() => stop(echo)));
      const link = (await runWhere(where.rogue, 'ip', ['-o', 'link', 'show', 'dev', 'net1'])).stdout;
      const mac = /link\/ether (\S+)/.exec(link)?.[1];
      if (!mac) throw new Error(`rogue's net1 has no MAC: ${link}`);
      capture = own(
        new PodProcess('tcpdump on the client', where.client, 'tcpdump', [
          ...['-i', 'net1', '-nn', '-l', '-e'],
          `arp and ether src ${mac}`,
        ]),
      );
      capture.start();
      await capture.waitForLine(/listening on net1/, 'its start');
      // The control: the client reaches the rogue pod's service on the pod's own address.
      expect(
        await waitFor(() => askName(where.client, net1Address(pods.rogue), ECHO_PORT), {
          what: 'an answer from rogue',
        }),
      ).toBe('rogue');
    });

    /** The rogue pod announces `address` as keepalived would: 3 gratuitous ARPs. */
    async function announceFromRogue(address: string): Promise<void> {
      await runWhere(where.rogue, 'arping', ['-U', '-c', '3', '-I', 'net1', address]);
    }

    it('cannot take the VIP over', async () => {
      await runWhere(where.rogue, 'ip', ['addr', 'add', `${VIP}/16`, 'dev', 'net1']);
      await announceFromRogue(VIP);
      // Had one announcement passed, the client's neighbour entry would name the rogue pod, whose
      // service answers on every address.
      for (let i = 0; i < 5; i++) expect(await askVip()).toBe('ka2');
    });

    it('announces an address nobody declared to no one, while its own address reaches the client', async () => {
      await runWhere(where.rogue, 'ip', ['addr', 'add', `${UNDECLARED}/16`, 'dev', 'net1']);
      await announceFromRogue(UNDECLARED);
      // The control, on the same path and after them: the pod announces its own address.
      const mine = net1Address(pods.rogue);
      await announceFromRogue(mine);
      await waitFor(() => announcements(mine) >= 3, {
        what: "the rogue pod's own announcements at the client",
        observed: () => capture.output(),
      });
      expect({
        own: announcements(mine),
        undeclared: announcements(UNDECLARED),
        vip: announcements(VIP),
      }).toEqual({
        own: 3,
        undeclared: 0,
        vip: 0,
      });
    });

    it('cannot answer for an address nobody declared: its unicast ARP replies and IP packets from it are dropped', async () => {
      // UNDECLARED is on its interface since the test before; its service answers on every address.
      await runWhere(where.rogue, 'ip', ['addr', 'replace', `${UNDECLARED}/16`, 'dev', 'net1']);
      for (let i = 0; i < 3; i++) expect(await askName(where.client, UNDECLARED, ECHO_PORT)).toBeUndefined();
      // The control: the same service on the pod's own address.
      expect(await askName(where.client, net1Address(pods.rogue), ECHO_PORT)).toBe('rogue');
    });
  });
});

describe('a market-data-style stream', () => {
  it('delivers every datagram to each of 5 members on 3 nodes, once and in order', async () => {
    const members = own(new StreamMembers(STREAM));
    const names = ['m1', 'm2a', 'm2b', 'm3a', 'm3b'] as const;
    for (const m of names) {
      // A real application joins on net1 (an IGMP report from the pod's kernel).
      members.join(where[m], net1Address(pods[m]));
      members.read(m, where[m]);
    }
    // The pod's default route is its primary network's: the sender's multicast goes out net1.
    await runWhere(where.src, 'ip', ['route', 'add', '224.0.0.0/4', 'dev', 'net1']);
    const sender = own(
      UnderlaySocket.open({ address: net1Address(pods.src), port: 0, netns: where.src.netnsPath }),
    );
    // Each member's join reaches every agent before the stream starts: a warm-up datagram each
    // 200 ms until every member read one.
    const joinedAt = Date.now();
    await poll(
      () => {
        if (members.warm.size === names.length) return true;
        sendWarmUp(sender, STREAM);
        return undefined;
      },
      {
        what: 'a warm-up datagram at every member',
        timeoutMs: 120_000,
        intervalMs: 200,
        observed: () => [...members.warm].join(', '),
      },
    );
    console.log(`stream: every member reached ${Date.now() - joinedAt} ms after the joins started`);
    await sendStream(sender, STREAM);
    await waitFor(() => members.complete, {
      what: `${STREAM.count} datagrams at every member`,
      timeoutMs: 60_000,
      observed: () => `received ${JSON.stringify(members.counts())}`,
    });
    // Nothing more comes (no late duplicates).
    await new Promise((r) => setTimeout(r, 1000));
    const summaries = members.summaries();
    console.log(
      `stream on the cluster (${STREAM.count} datagrams at ${STREAM.rate}/s): ${JSON.stringify(
        Object.fromEntries(
          Object.entries(summaries).map(([m, s]) => [
            m,
            { received: s.received, duplicates: s.duplicates, reordered: s.reordered },
          ]),
        ),
      )}`,
    );
    exactlyOnceInOrder(summaries, STREAM.count);
  });
});

describe('mDNS with avahi-daemon', () => {
  it('resolves a service published on one node on the other nodes', async () => {
    const avahi = {} as Record<'m1' | 'm2a' | 'm3a', AvahiPod>;
    for (const [name, host] of [
      ['m1', 'alpha'],
      ['m2a', 'bravo'],
      ['m3a', 'charlie'],
    ] as const) {
      avahi[name] = own(new AvahiPod(name, where[name], host, 'net1'));
      expect(await avahi[name].start()).toBe(host);
    }
    const s = { name: 'cluster-probe', type: '_castnet-probe._tcp', port: 7000, txt: ['pod=m1', 'path=/'] };
    const times = await publishAndResolve(
      avahi.m1,
      [avahi.m2a, avahi.m3a],
      s,
      resolvedAs(s, 'alpha.local', net1Address(pods.m1)),
    );
    console.log(
      `mDNS discovery on the cluster (ms after the service file was written): ${JSON.stringify(times)}`,
    );
  });
});

describe('Hazelcast multicast discovery', () => {
  it('forms one view of three members on three nodes, drops a killed member, never admits another network', async () => {
    requireHazelcast();
    const member = async (name: 'hz1' | 'hz2' | 'hz3' | 'other') => {
      // The pod's default route is its primary network's: discovery's multicast goes out net1.
      await runWhere(where[name], 'ip', ['route', 'add', '224.0.0.0/4', 'dev', 'net1']);
      const m = own(new HazelcastMember(name, where[name], net1Address(pods[name])));
      m.start();
      return m;
    };
    // The other network's member starts with the three: the same discovery at the same moment.
    const blue = [await member('hz1'), await member('hz2'), await member('hz3')];
    const other = await member('other');
    const formed = await Promise.all(blue.map((m) => m.waitForView(blue, 'sees all three members')));
    expect(new Set(formed.map((v) => v.members.join(','))).size).toBe(1);
    const lastStart = Math.max(...blue.map((m) => m.startedAt!));
    const firstOfThree = blue.map((m) => m.views.find((v) => v.size === 3)!.at);
    console.log(
      `hazelcast on the cluster: one view of 3 on every member ${Math.max(...firstOfThree) - lastStart} ms after the last member started Hazelcast`,
    );
    const [hz1, hz2, hz3] = blue as [HazelcastMember, HazelcastMember, HazelcastMember];
    const killedAt = Date.now();
    await hz3.kill();
    await Promise.all([hz1, hz2].map((m) => m.waitForView([hz1, hz2], 'drops the killed member')));
    console.log(
      `hazelcast on the cluster: the killed member left both views after ${Date.now() - killedAt} ms`,
    );
    // The other network's member, up all along, only ever saw itself, and nobody saw it.
    await other.waitForView([other], 'starts alone');
    expect(other.views.every((v) => v.size === 1)).toBe(true);
    for (const m of blue)
      expect(m.views.some((v) => v.members.some((a) => a.startsWith(`${other.address}:`)))).toBe(false);
  });
});

describe('Cyclone DDS', () => {
  it('discovers participants on three nodes by SPDP and delivers 10,000 reliable samples to two readers', async () => {
    const SAMPLES = 10_000;
    const opts = { domain: 0, readers: 2, samples: SAMPLES, iface: 'net1' };
    const writer = own(ddsParticipant('DDS writer on m1', where.m1, 'writer', opts));
    const readers = (['m2a', 'm3a'] as const).map((p) =>
      own(ddsParticipant(`DDS reader on ${p}`, where[p], 'reader', opts)),
    );
    const participants = [writer, ...readers];
    for (const p of participants) p.start();
    const guids = await Promise.all(
      participants.map(async (p) => (await awaitEvent(p, 'participant')).guid as string),
    );
    for (const [i, p] of participants.entries())
      await discoversExactly(
        p,
        guids.filter((_, j) => j !== i),
      );
    const discovery = discoveryTimes(participants, ['m1', 'm2a', 'm3a']);

    const matched = await awaitEvent(writer, 'matched');
    const acked = await awaitEvent(writer, 'acked', 120_000);
    expect(acked.ok).toBe(true);
    for (const r of readers) r.closeInput();
    const received = await Promise.all(readers.map((r) => awaitEvent(r, 'received')));
    for (const got of received) everySampleOnce(got, SAMPLES);
    console.log(
      `Cyclone DDS on the cluster: discovery (ms, observer->participant): ${JSON.stringify(discovery)}; ` +
        `${SAMPLES} reliable samples acknowledged by both readers ${Math.round(acked.at - matched.at)} ms after matching`,
    );
  });
});
