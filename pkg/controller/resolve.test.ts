import fc from 'fast-check';
import type {
  LabeledObject,
  LabelSelector,
  MembershipReport,
  MulticastGroup,
  MulticastGroupSpec,
  ReportEndpoint,
  ReportMembership,
  VirtualNetwork,
} from '../k8s/types.js';
import { fromReport, toReportSpec } from '../lookup/kubernetes/convert.js';
import { selectorMemberships } from '../lookup/kubernetes/selector-members.js';
import { resolveGroups, type ResolveInput } from './resolve.js';

const net = (
  name: string,
  subnets: string[],
  extra: Partial<VirtualNetwork['spec']> = {},
): VirtualNetwork => ({
  metadata: { name },
  spec: { networkID: 7, subnets, ...extra },
});

const group = (name: string, spec: Partial<MulticastGroupSpec>, namespace = 'team'): MulticastGroup => ({
  metadata: { name, namespace, generation: 3 },
  spec: { network: 'blue', address: '239.1.1.1', ...spec },
});

const ep = (id: number, ip: string, pod?: string, extra: Partial<ReportEndpoint> = {}): ReportEndpoint => ({
  endpointID: id,
  network: 'blue',
  mac: `02:00:00:00:00:${id.toString(16).padStart(2, '0')}`,
  ips: [ip],
  ...(pod ? { pod: { namespace: 'team', name: pod } } : {}),
  ...extra,
});

const report = (
  node: string,
  endpoints: ReportEndpoint[],
  memberships: ReportMembership[] = [],
): MembershipReport => ({
  metadata: { name: node },
  spec: { node, underlay: { address: '192.0.2.1', port: 4790 }, endpoints, memberships },
});

const join = (endpointID: number, group: string, filter?: ReportMembership['filter']): ReportMembership => ({
  network: 'blue',
  group,
  endpointID,
  ...(filter ? { filter } : {}),
});

const pod = (name: string, labels: Record<string, string> = {}): LabeledObject => ({
  namespace: 'team',
  name,
  labels,
});

// Three nodes: two pods each on n1 and n2, one on n3, all on network "blue" (dual-stack).
function threeNodes(memberships: Record<string, ReportMembership[]> = {}): MembershipReport[] {
  return [
    report('n1', [ep(1, '10.0.1.1', 'a1'), ep(2, '10.0.1.2', 'a2')], memberships.n1),
    report('n2', [ep(1, '10.0.2.1', 'b1'), ep(2, '10.0.2.2', 'b2')], memberships.n2),
    report('n3', [ep(5, '10.0.3.5', 'c5', { ips: ['10.0.3.5', 'fd00::35'] })], memberships.n3),
  ];
}
const allPods = ['a1', 'a2', 'b1', 'b2', 'c5'].map((n) => pod(n));

function resolve(partial: Partial<ResolveInput>) {
  return resolveGroups({
    networks: [net('blue', ['10.0.0.0/16', 'fd00::/64'])],
    groups: [],
    reports: [],
    pods: allPods,
    vmis: [],
    checkPods: true,
    ...partial,
  });
}

const condition = (r: ReturnType<typeof resolve>, key: string, type: string) =>
  r.groups.get(key)!.conditions.find((c) => c.type === type)!;

describe('resolveGroups', () => {
  test('merges three nodes’ IGMP joins and a static member into one sorted member list', () => {
    const r = resolve({
      groups: [group('feed', { staticMembers: ['10.0.2.2'] })],
      reports: threeNodes({
        n1: [join(1, '239.1.1.1'), join(2, '239.9.9.9')],
        n2: [join(1, '239.1.1.1', { mode: 'include', sources: ['10.0.9.9'] })],
        n3: [join(5, '239.1.1.1')],
      }),
    });
    const g = r.groups.get('team/feed')!;
    expect(g.members.map((m) => [m.node, m.endpointID, m.endpoint, m.pod, m.via])).toEqual([
      ['n1', 1, '10.0.1.1', 'team/a1', 'igmp'],
      ['n2', 1, '10.0.2.1', 'team/b1', 'igmp'],
      ['n2', 2, '10.0.2.2', 'team/b2', 'static'],
      ['n3', 5, '10.0.3.5', 'team/c5', 'igmp'],
    ]);
    expect(g.members[1].filter).toEqual({ mode: 'include', sources: ['10.0.9.9'] });
    expect(g.members[0].filter).toBeUndefined();
    expect(g.counts).toMatchObject({ members: 4, nodes: 3, igmp: 3, static: 1, unresolved: 0 });
    expect(condition(r, 'team/feed', 'Ready')).toMatchObject({
      status: 'True',
      message: '4 members on 3 nodes',
    });
  });

  test('IPv6 joins count as MLD, and a non-canonical group in a report still matches', () => {
    const r = resolve({
      groups: [group('v6', { address: 'ff3e::8000:1' })],
      reports: threeNodes({ n3: [join(5, 'FF3E:0:0::8000:1')] }),
    });
    expect(r.groups.get('team/v6')!.members).toMatchObject([{ node: 'n3', endpointID: 5, via: 'mld' }]);
  });

  test('one endpoint joined and static: listed once, as static, receiving any source', () => {
    const r = resolve({
      groups: [group('g', { staticMembers: ['10.0.1.1'] })],
      reports: threeNodes({ n1: [join(1, '239.1.1.1', { mode: 'include', sources: ['10.0.0.9'] })] }),
    });
    const ms = r.groups.get('team/g')!.members;
    expect(ms).toHaveLength(1);
    expect(ms[0]).toMatchObject({ via: 'static', endpointID: 1 });
    expect(ms[0].filter).toBeUndefined();
  });

  test('nested groups contribute their members, marked nested with the group they came from', () => {
    const r = resolve({
      groups: [group('outer', { nestedGroups: ['inner'] }), group('inner', { address: '239.2.2.2' })],
      reports: threeNodes({ n2: [join(2, '239.2.2.2')], n1: [join(1, '239.1.1.1')] }),
    });
    expect(r.groups.get('team/outer')!.members.map((m) => [m.node, m.via, m.group])).toEqual([
      ['n1', 'igmp', undefined],
      ['n2', 'nested', 'team/inner'],
    ]);
    expect(r.groups.get('team/inner')!.members).toHaveLength(1);
    expect(condition(r, 'team/outer', 'NestingValid').status).toBe('True');
  });

  test('a static group address nests that group, and without a MulticastGroup its IGMP joiners', () => {
    const r = resolve({
      groups: [
        group('g', { staticMembers: ['239.2.2.2', '239.3.3.3'] }),
        group('two', { address: '239.2.2.2' }),
      ],
      reports: threeNodes({ n1: [join(2, '239.2.2.2')], n3: [join(5, '239.3.3.3')] }),
    });
    expect(r.groups.get('team/g')!.members.map((m) => [m.node, m.endpointID, m.via, m.group])).toEqual([
      ['n1', 2, 'nested', 'team/two'],
      ['n3', 5, 'nested', '239.3.3.3'],
    ]);
    expect(r.groups.get('team/g')!.counts.unresolved).toBe(0);
  });

  test('a cycle rejects every group that reaches it: NestingValid=False with its path, and no members', () => {
    const r = resolve({
      groups: [
        group('a', { address: '239.0.0.1', nestedGroups: ['b'] }),
        group('b', { address: '239.0.0.2', nestedGroups: ['c'] }),
        group('c', { address: '239.0.0.3', staticMembers: ['239.0.0.1'] }),
      ],
      reports: threeNodes({
        n1: [join(1, '239.0.0.1')],
        n2: [join(1, '239.0.0.2')],
        n3: [join(5, '239.0.0.3')],
      }),
    });
    for (const [k, path] of [
      ['team/a', 'team/a -> team/b -> team/c -> team/a'],
      ['team/b', 'team/b -> team/c -> team/a -> team/b'],
      ['team/c', 'team/c -> team/a -> team/b -> team/c'],
    ]) {
      expect(condition(r, k, 'NestingValid')).toMatchObject({ status: 'False', reason: 'NestingCycle' });
      expect(condition(r, k, 'NestingValid').message).toContain(path);
      expect(condition(r, k, 'Ready')).toMatchObject({ status: 'False', reason: 'NestingCycle' });
      expect(r.groups.get(k)!.members).toEqual([]);
    }
  });

  test('nesting deeper than the limit rejects the group with NestingTooDeep', () => {
    const chain = Array.from({ length: 12 }, (_, i) =>
      group(`g${i}`, { address: `239.0.1.${i}`, ...(i < 11 ? { nestedGroups: [`g${i + 1}`] } : {}) }),
    );
    const r = resolve({ groups: chain, reports: threeNodes({ n3: [join(5, '239.0.1.11')] }) });
    expect(condition(r, 'team/g0', 'NestingValid')).toMatchObject({
      status: 'False',
      reason: 'NestingTooDeep',
    });
    expect(r.groups.get('team/g0')!.members).toHaveLength(0);
    expect(r.groups.get('team/g3')!.members).toHaveLength(1);
  });

  test('nested groups that are missing or on another network are reported and not followed', () => {
    const r = resolve({
      networks: [net('blue', ['10.0.0.0/16']), net('red', ['10.9.0.0/16'])],
      groups: [group('g', { nestedGroups: ['nope', 'redgroup'] }), group('redgroup', { network: 'red' })],
      reports: threeNodes(),
    });
    const c = condition(r, 'team/g', 'MembersResolved');
    expect(c).toMatchObject({ status: 'False', reason: 'NestedGroupNotFound' });
    expect(c.message).toContain('nested group "nope" does not exist');
    expect(c.message).toContain('nested group "redgroup" is on network "red", not "blue"');
  });

  test('pod and VMI label selectors select endpoints of matching objects in the group’s namespace only', () => {
    const vmEp = ep(9, '10.0.3.9', 'virt-launcher-vm1-abcde', { vm: { namespace: 'team', name: 'vm1' } });
    const reports = threeNodes();
    reports[2].spec.endpoints!.push(vmEp);
    const r = resolve({
      groups: [
        group('sel', {
          selectors: {
            pods: {
              matchLabels: { app: 'feed' },
              matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['x'] }],
            },
            vmis: { matchExpressions: [{ key: 'role', operator: 'In', values: ['db'] }] },
          },
        }),
      ],
      reports,
      pods: [
        ...allPods.filter((p) => p.name !== 'a2' && p.name !== 'b1'),
        pod('a2', { app: 'feed' }),
        pod('b1', { app: 'feed', tier: 'x' }),
        { namespace: 'other', name: 'c5', labels: { app: 'feed' } },
        pod('virt-launcher-vm1-abcde'),
      ],
      vmis: [{ namespace: 'team', name: 'vm1', labels: { role: 'db' } }],
    });
    expect(r.groups.get('team/sel')!.members.map((m) => [m.node, m.endpointID, m.via, m.vm])).toEqual([
      ['n1', 2, 'selector', undefined],
      ['n3', 9, 'selector', 'team/vm1'],
    ]);
  });

  test('selector members the agents report are listed once, via selector, and agree with the controller’s own', () => {
    const selecting = group('sel', {
      selectors: { pods: { matchExpressions: [{ key: 'app', operator: 'In', values: ['feed'] }] } },
    });
    const labelled = [
      ...allPods.filter((p) => p.name !== 'a2' && p.name !== 'c5'),
      pod('a2', { app: 'feed' }),
      pod('c5', { app: 'feed' }),
    ];
    const find = (ns: string, name: string) => labelled.find((o) => o.namespace === ns && o.name === name);
    // Each node's report as its agent writes it: an IGMP join of a2 too, and the selected endpoints.
    const reported = threeNodes({ n1: [join(2, '239.1.1.1')] }).map((r) => {
      const d = fromReport(r);
      const selected = selectorMemberships(r.spec.node, [selecting], d.endpoints, {
        pod: find,
        vmi: () => undefined,
      });
      return { ...r, spec: toReportSpec({ ...d, memberships: [...d.memberships, ...selected] }) };
    });
    expect(reported[0]!.spec.memberships).toContainEqual({
      network: 'blue',
      group: '239.1.1.1',
      endpointID: 2,
      via: 'selector',
    });
    const members = (partial: Partial<ResolveInput>) =>
      resolve({ groups: [selecting], ...partial })
        .groups.get('team/sel')!
        .members.map((m) => `${m.node}/${m.endpointID}:${m.via}`);
    const expected = ['n1/2:selector', 'n3/5:selector'];
    // From the reports alone (pods unlabelled as far as the controller knows)...
    expect(members({ reports: reported, checkPods: false })).toEqual(expected);
    // ...from the controller's own evaluation alone (agents not caught up, only a2's join)...
    expect(members({ reports: threeNodes({ n1: [join(2, '239.1.1.1')] }), pods: labelled })).toEqual(
      expected,
    );
    // ...and from both: the same members, each once.
    expect(members({ reports: reported, pods: labelled })).toEqual(expected);
  });

  test('endpoints of deleted pods (or of a replaced pod UID) are left out and reported stale', () => {
    const reports = threeNodes({ n1: [join(1, '239.1.1.1'), join(2, '239.1.1.1')] });
    reports[0].spec.endpoints![1].pod!.uid = 'old-uid';
    const r = resolve({
      groups: [group('g', {})],
      reports,
      pods: [pod('a2'), pod('b1')].map((p) => ({ ...p, uid: 'new-uid' })),
    });
    expect(r.groups.get('team/g')!.members).toEqual([]);
    expect(r.stale.map((s) => `${s.node}/${s.endpointID} ${s.pod}`).sort()).toEqual([
      'n1/1 team/a1',
      'n1/2 team/a2',
      'n2/2 team/b2',
      'n3/5 team/c5',
    ]);
  });

  test('reports of nodes that are not live do not count', () => {
    const r = resolve({
      groups: [group('g', {})],
      reports: threeNodes({ n1: [join(1, '239.1.1.1')], n2: [join(1, '239.1.1.1')] }),
      liveNodes: new Set(['n2', 'n3']),
    });
    expect(r.groups.get('team/g')!.members.map((m) => m.node)).toEqual(['n2']);
  });

  test('a join from an endpoint of another network is ignored', () => {
    const reports = threeNodes();
    reports[0].spec.endpoints!.push({
      endpointID: 7,
      network: 'red',
      mac: '02:00:00:00:00:77',
      ips: ['10.9.0.7'],
    });
    reports[0].spec.memberships = [{ network: 'blue', group: '239.1.1.1', endpointID: 7 }];
    const r = resolve({ groups: [group('g', {})], reports, checkPods: false });
    expect(r.groups.get('team/g')!.members).toEqual([]);
  });

  test('static members with no endpoint are counted and named in MembersResolved', () => {
    const r = resolve({
      groups: [group('g', { staticMembers: ['10.0.7.7', '02:00:00:00:00:01'] })],
      reports: threeNodes(),
    });
    const g = r.groups.get('team/g')!;
    expect(g.counts.unresolved).toBe(1);
    expect(g.members.map((m) => m.mac)).toEqual(['02:00:00:00:00:01', '02:00:00:00:00:01']);
    expect(condition(r, 'team/g', 'MembersResolved')).toMatchObject({
      status: 'False',
      reason: 'StaticMemberNotFound',
    });
    expect(condition(r, 'team/g', 'MembersResolved').message).toContain('10.0.7.7');
  });

  test.each([
    [[], 'NetworkNotFound', 'VirtualNetwork "blue" does not exist'],
    [
      [net('blue', ['fd00::/64'])],
      'AddressFamilyMismatch',
      'is IPv4 but VirtualNetwork "blue" has no IPv4 subnet',
    ],
    [
      [net('blue', ['10.0.0.0/16'], { multicast: { enabled: false } })],
      'MulticastDisabled',
      'multicast.enabled=false',
    ],
  ])('Ready=False when the network is unusable (%#: %s)', (networks, reason, message) => {
    const r = resolve({ networks, groups: [group('g', {})], reports: threeNodes() });
    expect(condition(r, 'team/g', 'Ready')).toMatchObject({ status: 'False', reason, observedGeneration: 3 });
    expect(condition(r, 'team/g', 'Ready').message).toContain(message);
  });

  test('property: the agents’ reported selector members are exactly the controller’s own selection', () => {
    const labels = fc.record(
      { app: fc.constantFrom('feed', 'other'), tier: fc.constantFrom('a', 'b') },
      { requiredKeys: [] },
    );
    const selector: fc.Arbitrary<LabelSelector> = fc.oneof(
      fc.record({ matchLabels: fc.record({ app: fc.constantFrom('feed', 'other') }) }),
      fc.record({
        matchExpressions: fc.tuple(
          fc.record({
            key: fc.constantFrom('app', 'tier'),
            operator: fc.constantFrom('In' as const, 'NotIn' as const),
            values: fc.constantFrom(['feed'], ['a', 'b'], ['b']).map((v) => [...v]),
          }),
        ),
      }),
      fc.record({
        matchExpressions: fc.tuple(
          fc.record({
            key: fc.constantFrom('app', 'tier'),
            operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const),
          }),
        ),
      }),
    );
    const podNames = ['a1', 'a2', 'b1', 'b2', 'c5'];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(labels, fc.constantFrom('team', 'other')), { minLength: 5, maxLength: 5 }),
        fc.array(fc.tuple(selector, fc.constantFrom('team', 'other')), { minLength: 1, maxLength: 3 }),
        (podSpecs, groupSpecs) => {
          const pods = podSpecs.map(([l, ns], i) => ({
            namespace: ns,
            name: podNames[i]!,
            labels: { ...l },
          }));
          const groups = groupSpecs.map(([sel, ns], i) =>
            group(`g${i}`, { address: `239.6.6.${i + 1}`, selectors: { pods: sel } }, ns),
          );
          // The endpoints' pods live in the namespace the pod was generated in.
          const reports = threeNodes().map((r) => {
            for (const e of r.spec.endpoints ?? [])
              e.pod!.namespace = pods.find((p) => p.name === e.pod!.name)!.namespace;
            return r;
          });
          const find = (ns: string, name: string) => pods.find((p) => p.namespace === ns && p.name === name);
          const reported = reports.map((r) => {
            const d = fromReport(r);
            const selected = selectorMemberships(r.spec.node, groups, d.endpoints, {
              pod: find,
              vmi: () => undefined,
            });
            return { ...r, spec: toReportSpec({ ...d, memberships: selected }) };
          });
          const members = (partial: Partial<ResolveInput>) => {
            const r = resolve({ groups, ...partial });
            return [...r.groups.values()].map((g) =>
              g.members.map((m) => `${g.key} ${m.node}/${m.endpointID}:${m.via}`),
            );
          };
          const byController = members({ reports, pods });
          // The reports alone (the controller knows no pods), and both together.
          expect(members({ reports: reported, pods: [], checkPods: false })).toEqual(byController);
          expect(members({ reports: reported, pods })).toEqual(byController);
        },
      ),
    );
  });

  test('property: any nesting graph resolves, never invents endpoints, flags every cycle, and a group rejected for one lists no members', () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...names), fc.constantFrom(...names)), { maxLength: 12 }),
        (edges) => {
          const groups = names.map((n, i) =>
            group(n, {
              address: `239.5.5.${i + 1}`,
              nestedGroups: [...new Set(edges.filter(([f, t]) => f === n && t !== n).map(([, t]) => t))],
            }),
          );
          const reports = threeNodes({ n1: names.map((_, i) => join(1, `239.5.5.${i + 1}`)) });
          const r = resolveGroups({
            networks: [net('blue', ['10.0.0.0/16'])],
            groups,
            reports,
            pods: allPods,
            vmis: [],
            checkPods: true,
          });
          const cyclic = hasCycle(groups);
          for (const g of r.groups.values()) {
            const rejected = g.conditions.some(
              (c) => c.type === 'NestingValid' && c.reason === 'NestingCycle',
            );
            expect(g.members.map((m) => `${m.node}/${m.endpointID}`)).toEqual(rejected ? [] : ['n1/1']);
          }
          const anyCycleFlag = [...r.groups.values()].some((g) =>
            g.conditions.some((c) => c.type === 'NestingValid' && c.reason === 'NestingCycle'),
          );
          expect(anyCycleFlag).toBe(cyclic);
        },
      ),
    );
  });
});

function hasCycle(groups: MulticastGroup[]): boolean {
  const edges = new Map(groups.map((g) => [g.metadata.name, g.spec.nestedGroups ?? []]));
  const state = new Map<string, number>();
  const dfs = (n: string): boolean => {
    state.set(n, 1);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === 1 || (!state.has(m) && dfs(m))) return true;
    }
    state.set(n, 2);
    return false;
  };
  return groups.some((g) => !state.has(g.metadata.name) && dfs(g.metadata.name));
}
