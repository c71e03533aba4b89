// Tenancy (pkg/resolve/tenancy.ts) as the agent resolves traffic and as the controller writes status:
// a tenant's groups cannot take, black-hole or pull in another tenant's address or endpoints, a group
// in a namespace the network does not allow acts on nothing, and the two sides agree.
import type { MembershipReport, MulticastGroup, MulticastGroupSpec, VirtualNetwork } from '../k8s/types.js';
import { fromReport, toGroupSpec, toNetworkSpec } from '../lookup/kubernetes/convert.js';
import { buildIndex, Resolver } from '../resolve/index.js';
import { attachRefusal, judgeAddress, type GroupClaim } from '../resolve/tenancy.js';
import { resolveGroups } from './resolve.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

const network = (allowedNamespaces?: string[]): VirtualNetwork => ({
  metadata: { name: 'blue' },
  spec: { networkID: 7, subnets: ['10.0.0.0/24'], ...(allowedNamespaces ? { allowedNamespaces } : {}) },
});

const group = (ns: string, name: string, age: number, spec: Partial<MulticastGroupSpec>): MulticastGroup => ({
  metadata: { name, namespace: ns, generation: 1, creationTimestamp: new Date(T0 + age * 1000) },
  spec: { network: 'blue', address: '239.1.1.1', ...spec },
});

// a1, b1 on n1; a2, b2 on n2. a* are pods of namespace a, b* of namespace b.
const PODS = { a1: [1, 'n1', 'a'], a2: [2, 'n2', 'a'], b1: [3, 'n1', 'b'], b2: [4, 'n2', 'b'] } as const;
const ip = (p: keyof typeof PODS): string => `10.0.0.${PODS[p][0]}`;

const reports = (): MembershipReport[] =>
  ['n1', 'n2'].map((node, i) => ({
    metadata: { name: node },
    spec: {
      node,
      underlay: { address: `192.0.2.${i + 1}`, port: 4790 },
      endpoints: Object.entries(PODS)
        .filter(([, [, n]]) => n === node)
        .map(([name, [id, , ns]]) => ({
          endpointID: id,
          network: 'blue',
          mac: `02:00:00:00:00:0${id}`,
          ips: [`10.0.0.${id}`],
          pod: { namespace: ns, name },
        })),
      memberships: [],
    },
  }));

/** What the agent on n1 (for a1, b1) or n2 delivers to a group, as endpoint IDs. */
function agentDelivers(
  vn: VirtualNetwork,
  groups: MulticastGroup[],
  sender: keyof typeof PODS,
  address: string,
): number[] | string {
  const parts = reports().map(fromReport);
  const index = buildIndex(
    {
      networks: [toNetworkSpec(vn)],
      nodes: parts.map((p) => p.node),
      endpoints: parts.flatMap((p) => p.endpoints),
      memberships: [],
      groups: groups.map(toGroupSpec),
    },
    PODS[sender][1],
  );
  const from = index.localEndpoint(PODS[sender][0])!;
  const r = new Resolver(index).resolveGroup(from, address, ip(sender));
  if (!r.ok) return r.error.code;
  return [...r.value.local, ...r.value.remote.flatMap((b) => b.endpointIds)].sort();
}

function status(vn: VirtualNetwork, groups: MulticastGroup[]) {
  const out = resolveGroups({
    networks: [vn],
    groups,
    reports: reports(),
    pods: [],
    vmis: [],
    checkPods: false,
  });
  return (key: string) => {
    const g = out.groups.get(key)!;
    const c = (type: string) => g.conditions.find((x) => x.type === type)!;
    return { members: g.members.map((m) => m.endpointID).sort(), c };
  };
}

describe('one address claimed by two tenants', () => {
  // A's group is the older; B's later groups at A's address try to black-hole it (allowedSenders, a
  // nesting cycle) and to take its traffic (static members of B).
  const groups = [
    group('a', 'stream', 1, { staticMembers: [ip('a2')] }),
    group('b', 'grab', 2, { staticMembers: [ip('b1')], allowedSenders: [ip('b2')] }),
    group('b', 'loop', 3, { staticMembers: ['239.2.2.2'] }),
    group('b', 'loop2', 4, { address: '239.2.2.2', staticMembers: ['239.1.1.1', ip('b2')] }),
  ];

  it('the agent delivers A’s traffic to A’s members only, exactly as before B came', () => {
    expect(agentDelivers(network(), groups, 'a1', '239.1.1.1')).toEqual([2]);
    expect(agentDelivers(network(), groups.slice(0, 1), 'a1', '239.1.1.1')).toEqual([2]);
    // B's own address works for B, but does not reach into A's address.
    expect(agentDelivers(network(), groups, 'b1', '239.2.2.2')).toEqual([4]);
  });

  it('the controller lists A’s members and refuses B’s groups there, naming the owner', () => {
    const s = status(network(), groups);
    expect(s('a/stream').members).toEqual([2]);
    expect(s('a/stream').c('Ready')).toMatchObject({ status: 'True' });
    expect(s('a/stream').c('Accepted')).toMatchObject({ status: 'True' });
    for (const key of ['b/grab', 'b/loop']) {
      expect(s(key).members).toEqual([]);
      expect(s(key).c('Accepted')).toMatchObject({ status: 'False', reason: 'AddressConflict' });
      expect(s(key).c('Ready')).toMatchObject({ status: 'False', reason: 'AddressConflict' });
      expect(s(key).c('Accepted').message).toContain('a/stream');
    }
    expect(s('b/loop2').members).toEqual([4]);
    expect(s('b/loop2').c('NestingValid')).toMatchObject({ status: 'True' });
    expect(s('b/loop2').c('MembersResolved')).toMatchObject({
      status: 'False',
      reason: 'StaticMemberNotAllowed',
    });
  });

  it('the verdict does not depend on the order the groups come in', () => {
    const claims: GroupClaim[] = groups.slice(0, 3).map((g) => ({
      namespace: g.metadata.namespace!,
      name: g.metadata.name,
      network: 'blue',
      address: g.spec.address,
      createdAt: g.metadata.creationTimestamp!.getTime(),
    }));
    const acts = (cs: GroupClaim[]) =>
      [...judgeAddress(cs, (c) => c, undefined)].filter(([, s]) => s.acts).map(([c]) => c.name);
    expect(acts(claims)).toEqual(['stream']);
    expect(acts([...claims].reverse())).toEqual(['stream']);
    // Same second, no time at all: namespace, then name.
    const untimed = claims.map(({ createdAt: _, ...c }) => c);
    expect(acts([...untimed].reverse())).toEqual(['stream']);
  });
});

test('a static member from another namespace is never a member', () => {
  const groups = [group('b', 'pull', 1, { address: '239.3.3.3', staticMembers: [ip('a2'), ip('b1')] })];
  expect(agentDelivers(network(), groups, 'b2', '239.3.3.3')).toEqual([3]);
  const s = status(network(), groups);
  expect(s('b/pull').members).toEqual([3]);
  expect(s('b/pull').c('MembersResolved')).toMatchObject({
    status: 'False',
    reason: 'StaticMemberNotAllowed',
  });
});

describe('a network that allows namespace a only', () => {
  const vn = network(['a']);
  // B's group is older, but b may not use the network: it neither acts nor owns the address.
  const groups = [
    group('b', 'sneak', 1, { staticMembers: [ip('b1')], allowedSenders: [ip('b2')] }),
    group('a', 'stream', 2, { staticMembers: [ip('a2')] }),
  ];

  it('ignores the group of namespace b in the agent and in status', () => {
    expect(agentDelivers(vn, groups, 'a1', '239.1.1.1')).toEqual([2]);
    const s = status(vn, groups);
    expect(s('b/sneak').members).toEqual([]);
    expect(s('b/sneak').c('Accepted')).toMatchObject({ status: 'False', reason: 'NamespaceNotAllowed' });
    expect(s('b/sneak').c('Accepted').message).toMatch(
      /VirtualNetwork "blue".*namespace "b".*allowedNamespaces/,
    );
    expect(s('a/stream').members).toEqual([2]);
  });

  it('refuses attachments from other namespaces, naming the network, the namespace and the field', () => {
    const spec = toNetworkSpec(vn);
    expect(attachRefusal(spec, 'a')).toBeUndefined();
    expect(attachRefusal(spec, 'b')).toBe(
      'VirtualNetwork "blue" does not allow namespace "b": spec.allowedNamespaces is [a]',
    );
    expect(attachRefusal(spec, undefined)).toContain('K8S_POD_NAMESPACE unset');
    // Unset: every namespace, as before the field existed.
    expect(attachRefusal(toNetworkSpec(network()), 'b')).toBeUndefined();
    expect(attachRefusal(toNetworkSpec(network()), undefined)).toBeUndefined();
  });
});
