// The agent (per packet, pkg/resolve) and the controller (status, ./resolve.ts) must judge nested
// groups alike: for every group address, the agent delivers to exactly the members the controller
// lists, and drops the traffic exactly when the controller rejects the groups there, for the same
// reason. Each graph runs through both, from the same custom resources.
import { fromReport, toGroupSpec, toNetworkSpec } from '../lookup/kubernetes/convert.js';
import type { MembershipReport, MulticastGroup, VirtualNetwork } from '../k8s/types.js';
import type { Directory } from '../lookup/port.js';
import { buildIndex, MAX_GROUP_DEPTH, Resolver } from '../resolve/index.js';
import { resolveGroups } from './resolve.js';

interface G {
  name: string;
  address: string;
  ns?: string;
  network?: string;
  nested?: string[];
  statics?: string[];
  /** Seconds after a fixed time the group was created (the oldest owns a contested address). */
  age?: number;
}

const addr = (i: number): string => `239.0.0.${i + 1}`;
const SENDER_IP = '10.0.0.100';

const networks: VirtualNetwork[] = ['blue', 'red'].map((name, i) => ({
  metadata: { name },
  spec: { networkID: i + 1, subnets: ['10.0.0.0/16'] },
}));

const toGroup = (g: G): MulticastGroup => ({
  metadata: {
    name: g.name,
    namespace: g.ns ?? 'team',
    generation: 1,
    ...(g.age !== undefined ? { creationTimestamp: new Date(Date.UTC(2026, 0, 1) + g.age * 1000) } : {}),
  },
  spec: {
    network: g.network ?? 'blue',
    address: g.address,
    ...(g.nested ? { nestedGroups: g.nested } : {}),
    ...(g.statics ? { staticMembers: g.statics } : {}),
  },
});

// One joiner per group address (endpoint i on node n1 or n2), a static endpoint, and a sender that
// is a member of nothing.
function reportsFor(addresses: string[]): MembershipReport[] {
  return ['n1', 'n2'].map((node, n) => {
    const mine = addresses.map((a, i) => ({ a, i })).filter(({ i }) => i % 2 === n);
    const endpoints = mine.map(({ i }) => ({
      endpointID: i + 1,
      network: 'blue',
      mac: `02:00:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`,
      ips: [`10.0.1.${i + 1}`],
    }));
    if (n === 0) {
      endpoints.push({ endpointID: 100, network: 'blue', mac: '02:00:00:00:00:64', ips: [SENDER_IP] });
      endpoints.push({ endpointID: 101, network: 'blue', mac: '02:00:00:00:00:65', ips: ['10.0.2.1'] });
    }
    return {
      metadata: { name: node },
      spec: {
        node,
        underlay: { address: `192.0.2.${n + 1}`, port: 4790 },
        poolIndex: n,
        endpoints,
        memberships: mine.map(({ a, i }) => ({ network: 'blue', group: a, endpointID: i + 1 })),
      },
    };
  });
}

type Verdict = 'ok' | 'cycle' | 'too-deep';

interface Judgement {
  verdict: Verdict;
  members: string[];
}

function byController(groups: MulticastGroup[], reports: MembershipReport[]): Map<string, Judgement> {
  const r = resolveGroups({ networks, groups, reports, pods: [], vmis: [], checkPods: false });
  const out = new Map<string, Judgement>();
  for (const g of groups) {
    if (g.spec.network !== 'blue') continue;
    const resolved = r.groups.get(`${g.metadata.namespace}/${g.metadata.name}`)!;
    // A group the tenancy rule refuses takes no part in its address (pkg/resolve/tenancy.ts).
    if (resolved.conditions.find((c) => c.type === 'Accepted')?.status === 'False') continue;
    const reason = resolved.conditions.find((c) => c.type === 'NestingValid')!.reason;
    const verdict: Verdict =
      reason === 'NestingCycle' ? 'cycle' : reason === 'NestingTooDeep' ? 'too-deep' : 'ok';
    const prev = out.get(g.spec.address);
    // Every group at an address shares one verdict; the address delivers to the union of their members.
    if (prev && prev.verdict !== verdict) throw new Error(`groups at ${g.spec.address} disagree`);
    const members = new Set([
      ...(prev?.members ?? []),
      ...resolved.members.map((m) => `${m.node}/${m.endpointID}`),
    ]);
    out.set(g.spec.address, { verdict, members: [...members].sort() });
  }
  return out;
}

function byAgent(groups: MulticastGroup[], reports: MembershipReport[], address: string): Judgement {
  const nodes = reports.map(fromReport);
  const directory: Directory = {
    networks: networks.map(toNetworkSpec),
    nodes: nodes.map((n) => n.node),
    endpoints: nodes.flatMap((n) => n.endpoints),
    memberships: nodes.flatMap((n) => n.memberships),
    groups: groups.map(toGroupSpec),
  };
  const index = buildIndex(directory, 'n1');
  const sender = index.endpointByAddress('blue', SENDER_IP)!;
  const r = new Resolver(index).resolveGroup(sender, address, SENDER_IP);
  if (!r.ok) {
    expect(['group-cycle', 'group-too-deep']).toContain(r.error.code);
    expect(r.error.path?.length).toBeGreaterThan(1);
    return { verdict: r.error.code === 'group-cycle' ? 'cycle' : 'too-deep', members: [] };
  }
  const members = [
    ...r.value.local.map((id) => `n1/${id}`),
    ...r.value.remote.flatMap((b) => b.endpointIds.map((id) => `${b.node.name}/${id}`)),
  ];
  return { verdict: 'ok', members: members.sort() };
}

const chain = (levels: number): G[] =>
  Array.from({ length: levels + 1 }, (_, i) => ({
    name: `g${i}`,
    address: addr(i),
    ...(i < levels ? { nested: [`g${i + 1}`] } : {}),
  }));

// name, groups, and the verdict expected for each address (every group address of the case is checked).
const cases: [string, G[], Record<string, Verdict>][] = [
  [
    'a tree through names and static group addresses',
    [
      { name: 'a', address: addr(0), nested: ['b'], statics: [addr(2), '10.0.2.1'] },
      { name: 'b', address: addr(1) },
      { name: 'c', address: addr(2) },
    ],
    { [addr(0)]: 'ok', [addr(1)]: 'ok', [addr(2)]: 'ok' },
  ],
  [
    'a diamond',
    [
      { name: 'a', address: addr(0), nested: ['b', 'c'] },
      { name: 'b', address: addr(1), nested: ['d'] },
      { name: 'c', address: addr(2), statics: [addr(3)] },
      { name: 'd', address: addr(3) },
    ],
    { [addr(0)]: 'ok', [addr(1)]: 'ok', [addr(2)]: 'ok', [addr(3)]: 'ok' },
  ],
  [
    'a cycle by name rejects its groups and the group nesting it, not the group below',
    [
      { name: 'r', address: addr(0), nested: ['a'] },
      { name: 'a', address: addr(1), nested: ['b'] },
      { name: 'b', address: addr(2), nested: ['a', 'leaf'] },
      { name: 'leaf', address: addr(3) },
    ],
    { [addr(0)]: 'cycle', [addr(1)]: 'cycle', [addr(2)]: 'cycle', [addr(3)]: 'ok' },
  ],
  [
    'a cycle through a static group address',
    [
      { name: 'a', address: addr(0), statics: [addr(1)] },
      { name: 'b', address: addr(1), nested: ['a'] },
    ],
    { [addr(0)]: 'cycle', [addr(1)]: 'cycle' },
  ],
  [
    'a later namespace declaring the same address can neither join nor break it (tenancy)',
    [
      { name: 'a', address: addr(0), statics: ['10.0.2.1'], age: 1 },
      { name: 'x', ns: 'other', address: addr(0), nested: ['y'], age: 2 },
      { name: 'y', ns: 'other', address: addr(1), statics: [addr(0)], age: 3 },
      { name: 'z', address: addr(2), nested: ['a'], age: 4 },
    ],
    { [addr(0)]: 'ok', [addr(1)]: 'ok', [addr(2)]: 'ok' },
  ],
  [
    'the older namespace owns the address: its own cycle rejects it, the later one is ignored',
    [
      { name: 'a', address: addr(0), statics: ['10.0.2.1'], age: 4 },
      { name: 'x', ns: 'other', address: addr(0), nested: ['y'], age: 1 },
      { name: 'y', ns: 'other', address: addr(1), statics: [addr(0)], age: 2 },
      { name: 'z', address: addr(2), nested: ['a'], age: 3 },
    ],
    { [addr(0)]: 'cycle', [addr(1)]: 'cycle', [addr(2)]: 'ok' },
  ],
  [
    'nesting a group at its own address is a cycle',
    [
      { name: 'a', address: addr(0), nested: ['twin'] },
      { name: 'twin', address: addr(0) },
    ],
    { [addr(0)]: 'cycle' },
  ],
  [
    `a chain of exactly ${MAX_GROUP_DEPTH} levels`,
    chain(MAX_GROUP_DEPTH),
    Object.fromEntries(chain(MAX_GROUP_DEPTH).map((g) => [g.address, 'ok'])),
  ],
  [
    `a chain of ${MAX_GROUP_DEPTH + 1} levels rejects only its head`,
    chain(MAX_GROUP_DEPTH + 1),
    Object.fromEntries(chain(MAX_GROUP_DEPTH + 1).map((g, i) => [g.address, i === 0 ? 'too-deep' : 'ok'])),
  ],
  [
    'a cycle wins over depth',
    [...chain(MAX_GROUP_DEPTH + 1).map((g, i) => (i === MAX_GROUP_DEPTH + 1 ? { ...g, nested: ['g0'] } : g))],
    Object.fromEntries(chain(MAX_GROUP_DEPTH + 1).map((g) => [g.address, 'cycle'])),
  ],
  [
    'missing nested groups and groups on another network are not edges',
    [
      { name: 'a', address: addr(0), nested: ['nope', 'red'] },
      { name: 'red', address: addr(1), network: 'red', nested: ['a'] },
    ],
    { [addr(0)]: 'ok' },
  ],
];

describe('agent and controller judge nested groups alike', () => {
  test.each(cases)('%s', (_, gs, expected) => {
    const groups = gs.map(toGroup);
    const addresses = [...new Set(gs.map((g) => g.address))];
    const reports = reportsFor(addresses);
    const controller = byController(groups, reports);
    expect([...controller.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [address, verdict] of Object.entries(expected)) {
      const c = controller.get(address)!;
      const a = byAgent(groups, reports, address);
      expect({ address, ...a }).toEqual({ address, ...c });
      expect({ address, verdict: a.verdict }).toEqual({ address, verdict });
      // An accepted address reaches at least its own joiner, so agreement is never vacuous.
      if (verdict === 'ok') expect(a.members.length).toBeGreaterThan(0);
      else expect(a.members).toEqual([]);
    }
  });
});
