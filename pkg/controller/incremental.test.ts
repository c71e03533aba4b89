// After any sequence of updates, the incremental resolver's groups must be what an independent,
// deliberately naive reference written here from docs/api.md ("Resolution rules", "Status") says:
// who is a member and whether the group is Ready. It must also agree in every detail (via, filters,
// counts, conditions) with resolving the whole snapshot from scratch: that is what lets the
// controller re-resolve only what a change touches.
import fc from 'fast-check';
import type { LabeledObject, MembershipReport, MulticastGroup, VirtualNetwork } from '../k8s/types.js';
import { GroupResolver, resolveGroups, type ResolvedGroup } from './resolve.js';

const NAMES = ['g0', 'g1', 'g2', 'g3', 'g4'];
const NODES = ['n1', 'n2', 'n3'];
const PODS = ['p1', 'p2', 'p3'];
const GROUP_ADDRS = ['239.0.0.1', '239.0.0.2', '239.0.0.3', 'ff3e::1'];
const IPS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];

const network = fc.record({
  name: fc.constantFrom('blue', 'red'),
  v6: fc.boolean(),
  multicast: fc.boolean(),
});
const group = fc.record({
  name: fc.constantFrom(...NAMES),
  network: fc.constantFrom('blue', 'red'),
  address: fc.constantFrom(...GROUP_ADDRS),
  nested: fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 3 }),
  statics: fc.uniqueArray(fc.constantFrom(...IPS, ...GROUP_ADDRS), { maxLength: 3 }),
  selector: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
});
const report = fc.record({
  node: fc.constantFrom(...NODES),
  endpoints: fc.uniqueArray(
    fc.record({
      id: fc.integer({ min: 1, max: 4 }),
      ip: fc.constantFrom(...IPS),
      pod: fc.option(fc.constantFrom(...PODS), { nil: undefined }),
      network: fc.constantFrom('blue', 'red'),
    }),
    { selector: (e) => e.id, maxLength: 4 },
  ),
  joins: fc.array(
    fc.record({
      id: fc.integer({ min: 1, max: 4 }),
      group: fc.constantFrom(...GROUP_ADDRS),
      include: fc.option(fc.constantFrom('10.0.9.1', '10.0.9.2'), { nil: undefined }),
    }),
    { maxLength: 5 },
  ),
});
const pod = fc.record({
  name: fc.constantFrom(...PODS),
  app: fc.constantFrom('a', 'b'),
  uid: fc.constantFrom('u1', 'u2'),
});

const op = fc.oneof(
  network.map((n) => ({ kind: 'setNetwork' as const, n })),
  fc.constantFrom('blue', 'red').map((name) => ({ kind: 'deleteNetwork' as const, name })),
  group.map((g) => ({ kind: 'setGroup' as const, g })),
  fc.constantFrom(...NAMES).map((name) => ({ kind: 'deleteGroup' as const, name })),
  report.map((r) => ({ kind: 'setReport' as const, r })),
  fc.constantFrom(...NODES).map((node) => ({ kind: 'deleteReport' as const, node })),
  pod.map((p) => ({ kind: 'setPod' as const, p })),
  fc.constantFrom(...PODS).map((name) => ({ kind: 'deletePod' as const, name })),
  fc.subarray(NODES).map((live) => ({ kind: 'live' as const, live })),
);

type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function toNetwork(n: { name: string; v6: boolean; multicast: boolean }): VirtualNetwork {
  return {
    metadata: { name: n.name },
    spec: {
      networkID: 1,
      subnets: n.v6 ? ['fd00::/64'] : ['10.0.0.0/16'],
      multicast: { enabled: n.multicast },
    },
  };
}

function toGroup(
  g: fc.Arbitrary<unknown> extends never ? never : Extract<Op, { kind: 'setGroup' }>['g'],
): MulticastGroup {
  return {
    metadata: { name: g.name, namespace: 'ns', generation: 1 },
    spec: {
      network: g.network,
      address: g.address,
      nestedGroups: g.nested.filter((n) => n !== g.name),
      staticMembers: g.statics.filter((s) => s !== g.address),
      ...(g.selector ? { selectors: { pods: { matchLabels: { app: g.selector } } } } : {}),
    },
  };
}

function toReport(r: Extract<Op, { kind: 'setReport' }>['r']): MembershipReport {
  return {
    metadata: { name: r.node },
    spec: {
      node: r.node,
      underlay: { address: '192.0.2.1', port: 1 },
      endpoints: r.endpoints.map((e) => ({
        endpointID: e.id,
        network: e.network,
        mac: `02:00:00:00:00:0${e.id}`,
        ips: [e.ip],
        ...(e.pod ? { pod: { namespace: 'ns', name: e.pod, uid: 'u1' } } : {}),
      })),
      memberships: r.joins.map((j) => ({
        network: r.endpoints.find((e) => e.id === j.id)?.network ?? 'blue',
        group: j.group,
        endpointID: j.id,
        ...(j.include ? { filter: { mode: 'include' as const, sources: [j.include] } } : {}),
      })),
    },
  };
}

const strip = (r: ResolvedGroup | undefined) =>
  r && { members: r.members, counts: r.counts, conditions: r.conditions };

interface Snapshot {
  networks: Map<string, VirtualNetwork>;
  groups: Map<string, MulticastGroup>;
  reports: Map<string, MembershipReport>;
  pods: Map<string, LabeledObject>;
  live: Set<string> | undefined;
}

interface Expected {
  /** node/endpointID of every member, sorted. */
  members: string[];
  ready: { status: string; reason: string };
}

const isGroupAddr = (a: string): boolean => a.startsWith('239.') || a.startsWith('ff');

/**
 * The reference, by brute force over the snapshot, sharing no code with the resolver. Per docs/api.md:
 * - endpoints count when their node is live and their pod (if any) exists with the reported UID;
 * - direct members: the IGMP/MLD joiners of (network, address); static IPs: endpoints with that IP on
 *   the network; a static group address: the MulticastGroups with that address on the network
 *   (nesting), or, if there is none, that address's joiners; selectors: endpoints of matching pods;
 * - edges lead to addresses: a nested group (same network) or a static group address reaches every
 *   MulticastGroup with that address on the network;
 * - members: the direct members of the group and of every group it reaches by nesting; none at all
 *   when a cycle is reachable from any group with the group's address (the group is rejected);
 * - Ready: False with NetworkNotFound, AddressFamilyMismatch or MulticastDisabled, else False with
 *   NestingCycle when rejected, else True with Resolved.
 */
function reference(s: Snapshot): Map<string, Expected> {
  type Ep = { node: string; id: number; network: string; ips: string[]; pod?: string };
  const eps: Ep[] = [];
  const joins: { ep: Ep; network: string; group: string }[] = [];
  for (const r of s.reports.values()) {
    if (s.live && !s.live.has(r.spec.node)) continue;
    const counted = new Map<number, Ep>();
    for (const e of r.spec.endpoints ?? []) {
      if (e.pod) {
        const p = s.pods.get(e.pod.name);
        if (!p || (p.uid && e.pod.uid && p.uid !== e.pod.uid)) continue;
      }
      const ep = {
        node: r.spec.node,
        id: e.endpointID,
        network: e.network,
        ips: e.ips ?? [],
        pod: e.pod?.name,
      };
      eps.push(ep);
      counted.set(e.endpointID, ep);
    }
    for (const m of r.spec.memberships ?? []) {
      const ep = counted.get(m.endpointID);
      if (ep && ep.network === m.network) joins.push({ ep, network: m.network, group: m.group });
    }
  }
  const joiners = (network: string, group: string): Ep[] =>
    joins.filter((j) => j.network === network && j.group === group).map((j) => j.ep);

  const direct = (g: MulticastGroup): { members: Ep[]; edges: string[] } => {
    const net = g.spec.network;
    const members = joiners(net, g.spec.address);
    const edges: string[] = [];
    for (const m of g.spec.staticMembers ?? []) {
      if (isGroupAddr(m)) {
        const named = [...s.groups.entries()].filter(
          ([, o]) => o.spec.network === net && o.spec.address === m,
        );
        if (named.length) edges.push(...named.map(([k]) => k));
        else members.push(...joiners(net, m));
      } else {
        members.push(...eps.filter((e) => e.network === net && e.ips.includes(m)));
      }
    }
    const app = g.spec.selectors?.pods?.matchLabels?.app;
    if (app) {
      const selected = [...s.pods.values()].filter((p) => p.labels.app === app).map((p) => p.name);
      members.push(...eps.filter((e) => e.network === net && e.pod && selected.includes(e.pod)));
    }
    for (const n of g.spec.nestedGroups ?? []) {
      const o = s.groups.get(`ns/${n}`);
      if (o && o.spec.network === net)
        edges.push(
          ...[...s.groups.entries()]
            .filter(([, x]) => x.spec.network === net && x.spec.address === o.spec.address)
            .map(([k]) => k),
        );
    }
    return { members, edges };
  };

  const reachable = (from: string): Set<string> => {
    const seen = new Set<string>();
    const todo = [...direct(s.groups.get(from)!).edges];
    while (todo.length) {
      const k = todo.pop()!;
      if (seen.has(k)) continue;
      seen.add(k);
      todo.push(...direct(s.groups.get(k)!).edges);
    }
    return seen;
  };

  const out = new Map<string, Expected>();
  for (const [key, g] of s.groups) {
    const below = reachable(key);
    const sameAddress = [...s.groups.entries()]
      .filter(([, x]) => x.spec.network === g.spec.network && x.spec.address === g.spec.address)
      .map(([k]) => k);
    const cycle = sameAddress.some((r) => [r, ...reachable(r)].some((k) => reachable(k).has(k)));
    const members = new Set<string>();
    if (!cycle)
      for (const k of [key, ...below])
        for (const e of direct(s.groups.get(k)!).members) members.add(`${e.node}/${e.id}`);
    const vn = s.networks.get(g.spec.network);
    const v6 = g.spec.address.includes(':');
    const netHasV6 = vn?.spec.subnets.some((c) => c.includes(':'));
    const netHasV4 = vn?.spec.subnets.some((c) => !c.includes(':'));
    const ready = !vn
      ? { status: 'False', reason: 'NetworkNotFound' }
      : (v6 && !netHasV6) || (!v6 && !netHasV4)
        ? { status: 'False', reason: 'AddressFamilyMismatch' }
        : vn.spec.multicast?.enabled === false
          ? { status: 'False', reason: 'MulticastDisabled' }
          : cycle
            ? { status: 'False', reason: 'NestingCycle' }
            : { status: 'True', reason: 'Resolved' };
    out.set(key, { members: [...members].sort(), ready });
  }
  return out;
}

function observed(r: ResolvedGroup): Expected {
  const ready = r.conditions.find((c) => c.type === 'Ready')!;
  return {
    members: r.members.map((m) => `${m.node}/${m.endpointID}`).sort(),
    ready: { status: ready.status, reason: ready.reason },
  };
}

test('property: incremental resolution matches the reference, and resolving from scratch', () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
      const inc = new GroupResolver(true);
      const networks = new Map<string, VirtualNetwork>();
      const groups = new Map<string, MulticastGroup>();
      const reports = new Map<string, MembershipReport>();
      const pods = new Map<string, LabeledObject>();
      let live: Set<string> | undefined;
      const seen = new Map<string, ResolvedGroup>();
      for (const o of ops) {
        switch (o.kind) {
          case 'setNetwork':
            networks.set(o.n.name, toNetwork(o.n));
            inc.setNetwork(toNetwork(o.n));
            break;
          case 'deleteNetwork':
            networks.delete(o.name);
            inc.deleteNetwork(o.name);
            break;
          case 'setGroup':
            groups.set(`ns/${o.g.name}`, toGroup(o.g));
            inc.setGroup(toGroup(o.g));
            break;
          case 'deleteGroup':
            groups.delete(`ns/${o.name}`);
            inc.deleteGroup(`ns/${o.name}`);
            seen.delete(`ns/${o.name}`);
            break;
          case 'setReport':
            reports.set(o.r.node, toReport(o.r));
            inc.setReport(toReport(o.r));
            break;
          case 'deleteReport':
            reports.delete(o.node);
            inc.deleteReport(o.node);
            break;
          case 'setPod': {
            const p = { namespace: 'ns', name: o.p.name, uid: o.p.uid, labels: { app: o.p.app } };
            pods.set(o.p.name, p);
            inc.setPod(p);
            break;
          }
          case 'deletePod':
            pods.delete(o.name);
            inc.deletePod('ns', o.name);
            break;
          case 'live':
            live = new Set(o.live);
            inc.setLiveNodes(live);
            break;
        }
        for (const [k, r] of inc.resolveDirty()) seen.set(k, r);
        const expected = reference({ networks, groups, reports, pods, live });
        expect([...seen.keys()].sort()).toEqual([...expected.keys()].sort());
        for (const [k, e] of expected)
          expect({ group: k, ...observed(seen.get(k)!) }).toEqual({ group: k, ...e });
        const fresh = resolveGroups({
          networks: [...networks.values()],
          groups: [...groups.values()],
          reports: [...reports.values()],
          pods: [...pods.values()],
          vmis: [],
          liveNodes: live,
          checkPods: true,
        });
        expect([...seen.keys()].sort()).toEqual([...fresh.groups.keys()].sort());
        for (const [k, r] of fresh.groups) expect(strip(seen.get(k))).toEqual(strip(r));
      }
    }),
    { numRuns: 300 },
  );
});
