// Hazelcast multicast discovery (issue 13, scenario 3) on a real three-node lab, with the real
// Hazelcast jar (`make deps`: mk/hazelcast.mk) and a member program that joins by multicast only
// (hazelcast/ClusterMember.java). What its users expect:
//   - three members on three nodes form one cluster view;
//   - a killed member leaves the view of the others;
//   - a member on another tenant's network never joins, while a member started at the same time on
//     the cluster's own network does (the positive control: the same discovery, the same moment).
//     Hazelcast's own view would stay alone even if its discovery leaked (the answer's TCP connect
//     has no route between the tenants), so a listener on the discovery group in every pod checks
//     the multicast itself: each blue pod hears the other blue members, and no datagram crosses
//     between the tenants in either direction.
// The discovery time (all three members' first view of 3, from the last member's start of
// Hazelcast) is printed, not asserted: timing belongs in benchmarks.
import { run } from '../../pkg/sys/exec.js';
import { UnderlaySocket } from '../../pkg/underlay/udp.js';
import { useLab } from '../harness/lab-fixture.js';
import { inNetns } from '../harness/where.js';
import { DISCOVERY_GROUP, DISCOVERY_PORT, HazelcastMember, requireHazelcast } from './hazelcast.js';

const { pod, own } = useLab(
  `
nodes: 3
networks:
  - { name: blue, id: 100, subnets: [10.30.0.0/16] }
  - { name: red, id: 200, subnets: [10.31.0.0/16] }
pods:
  - { name: hz0, node: 0, network: blue }
  - { name: hz1, node: 1, network: blue }
  - { name: hz2, node: 2, network: blue }
  - { name: other, node: 1, network: red }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`,
  { captures: false },
);

it('forms one cluster by multicast across nodes, drops a killed member, and never admits another tenant', async () => {
  requireHazelcast();
  /** pod -> source addresses of the discovery datagrams its listener read. */
  const heard = new Map<string, Set<string>>();
  const member = (name: string) => {
    const m = own(new HazelcastMember(name, inNetns(pod(name).ns), pod(name).ip));
    m.start();
    return m;
  };
  // A Kubernetes pod's default route covers multicast; the lab's pods have only their subnet's.
  for (const name of ['hz0', 'hz1', 'hz2', 'other']) {
    const ns = pod(name).ns;
    await run('ip', ['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
    // Beside the member's own socket (both SO_REUSEADDR): reads what the pod's kernel accepts
    // for the group the member joined.
    const sock = own(
      UnderlaySocket.open({
        address: DISCOVERY_GROUP,
        port: DISCOVERY_PORT,
        netns: `/run/netns/${ns}`,
        reuseAddress: true,
      }),
    );
    const sources = new Set<string>();
    heard.set(name, sources);
    sock.onDatagrams((batch) => batch.forEach((d) => sources.add(d.from.address)));
  }

  const blue = ['hz0', 'hz1', 'hz2'].map(member);
  const formed = await Promise.all(blue.map((m) => m.waitForView(blue, 'sees all three members')));
  const lastStart = Math.max(...blue.map((m) => m.startedAt!));
  const firstOfThree = blue.map((m) => m.views.find((v) => v.size === 3)!.at);
  console.log(
    `hazelcast: one view of 3 on every member ${Math.max(...firstOfThree) - lastStart} ms after the last member started Hazelcast`,
  );
  expect(new Set(formed.map((v) => v.members.join(','))).size).toBe(1);

  const [hz0, hz1, hz2] = blue as [HazelcastMember, HazelcastMember, HazelcastMember];
  await hz2.kill();
  await Promise.all([hz0, hz1].map((m) => m.waitForView([hz0, hz1], 'drops the killed member')));

  // The other tenant's member starts with a new member on the cluster's network: the same
  // multicast discovery at the same moment. Once both finished joining (each printed its first
  // view), the new one is in the cluster and the other tenant's is alone.
  const rejoined = member('hz2');
  const other = member('other');
  await Promise.all(
    [hz0, hz1, rejoined].map((m) => m.waitForView([hz0, hz1, rejoined], 'admits a new member')),
  );
  await other.waitForView([other], 'starts alone');
  expect(other.views.every((v) => v.size === 1)).toBe(true);
  for (const m of [hz0, hz1, rejoined])
    expect(m.views.some((v) => v.members.some((a) => a.startsWith(`${other.address}:`)))).toBe(false);
  // The discovery multicast itself: heard between the blue members, never across the tenants.
  const blueAddresses = blue.map((m) => m.address);
  for (const m of blue) {
    const sources = [...heard.get(m.pod)!];
    expect({
      pod: m.pod,
      fromOtherBlue: sources.some((a) => a !== m.address && blueAddresses.includes(a)),
    }).toEqual({
      pod: m.pod,
      fromOtherBlue: true,
    });
    expect({ pod: m.pod, sources }).toEqual({
      pod: m.pod,
      sources: sources.filter((a) => a !== other.address),
    });
  }
  expect({ pod: 'other', sources: [...heard.get('other')!].filter((a) => a !== other.address) }).toEqual({
    pod: 'other',
    sources: [],
  });
}, 600_000);
