// The incremental resolver must agree with resolving the whole snapshot from scratch after any
// sequence of updates: that is what lets the controller re-resolve only what a change touches.
import fc from 'fast-check';
import type { LabeledObject, MembershipReport, MulticastGroup, VirtualNetwork } from '../k8s/types';
import { GroupResolver, resolveGroups, type ResolvedGroup } from './resolve';

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

test('property: incremental resolution equals resolving the snapshot from scratch', () => {
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
