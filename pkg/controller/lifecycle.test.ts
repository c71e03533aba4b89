import { fromReport, toReportSpec } from '../lookup/kubernetes/convert.js';
import type { GroupMember, MulticastGroup, VirtualNetwork } from '../k8s/types.js';
import { canonicalAddress, isGroupAddress } from '../netaddr/address.js';
import { applyConditions } from '../k8s/conditions.js';
import { EventLimiter, groupEvents } from './events.js';
import { mergeFilters } from './filter.js';
import { judgeNodes } from './gc.js';
import { desiredNetworkStatuses } from './networks.js';
import { selectorMatches } from '../k8s/selector.js';
import { desiredGroupStatus, sameStatus } from './status.js';

const T0 = Date.parse('2026-11-28T10:00:00Z');
const MIN = 60_000;

describe('judgeNodes (garbage collection of lost nodes)', () => {
  const nodes = [
    { name: 'up', ready: true },
    { name: 'flaky', ready: false, since: new Date(T0 - 2 * MIN).toISOString() },
    { name: 'down', ready: false, since: new Date(T0 - 20 * MIN).toISOString() },
  ];

  test('NotReady longer than the grace period stops counting; deleted nodes are collected after grace', () => {
    const first = judgeNodes(['up', 'flaky', 'down', 'deleted'], nodes, T0, 5 * MIN, new Map());
    expect([...first.live].sort()).toEqual(['deleted', 'flaky', 'up']);
    expect(first.collect).toEqual([]);
    const later = judgeNodes(['up', 'deleted'], nodes, T0 + 6 * MIN, 5 * MIN, first.missingSince);
    expect([...later.live]).toEqual(['up']);
    expect(later.collect).toEqual(['deleted']);
  });

  test('a node that comes back is forgotten as missing', () => {
    const first = judgeNodes(['n'], [], T0, 5 * MIN, new Map());
    const back = judgeNodes(['n'], [{ name: 'n', ready: true }], T0 + 10 * MIN, 5 * MIN, first.missingSince);
    expect(back.missingSince.size).toBe(0);
    expect(judgeNodes(['n'], [], T0 + 11 * MIN, 5 * MIN, back.missingSince).collect).toEqual([]);
  });
});

describe('events', () => {
  const m = (node: string, id: number, via: GroupMember['via'] = 'igmp'): GroupMember => ({
    endpoint: `10.0.0.${id}`,
    endpointID: id,
    node,
    pod: `team/p${id}`,
    via,
  });

  test('one summarized event per direction, naming pod, node and how it joined', () => {
    const evs = groupEvents(
      { members: [m('n1', 1), m('n1', 2)], conditions: [] },
      { members: [m('n1', 2), m('n2', 3, 'static')], conditions: [] },
    );
    expect(evs).toEqual([
      {
        type: 'Normal',
        reason: 'MembersJoined',
        message: '1 joined: 10.0.0.3 (pod team/p3 on n2) via static',
      },
      { type: 'Normal', reason: 'MembersLeft', message: '1 left: 10.0.0.1 (pod team/p1 on n1) via igmp' },
    ]);
  });

  test('long lists are cut, and a condition turning False is a Warning once', () => {
    const many = Array.from({ length: 9 }, (_, i) => m('n1', i + 1));
    const bad = {
      type: 'Ready',
      status: 'False' as const,
      reason: 'NestingCycle',
      message: 'nesting cycle team/a -> team/b -> team/a',
      lastTransitionTime: '',
    };
    const evs = groupEvents(undefined, { members: many, conditions: [bad] });
    expect(evs[0].message).toMatch(/^9 joined: .* and 4 more$/);
    expect(evs[1]).toEqual({ type: 'Warning', reason: 'NestingCycle', message: bad.message });
    expect(groupEvents({ members: many, conditions: [bad] }, { members: many, conditions: [bad] })).toEqual(
      [],
    );
  });

  test('the limiter allows a burst per group, then one per interval', () => {
    const l = new EventLimiter(3, 10_000);
    const allowed = [0, 1, 2, 3, 4].map((i) => l.allow('team/g', T0 + i));
    expect(allowed).toEqual([true, true, true, false, false]);
    expect(l.allow('team/other', T0)).toBe(true);
    expect(l.allow('team/g', T0 + 10_010)).toBe(true);
    expect(l.allow('team/g', T0 + 10_020)).toBe(false);
    expect(l.suppressed).toBe(3);
  });
});

describe('status', () => {
  const g: MulticastGroup = {
    metadata: { name: 'g', namespace: 'team', generation: 2 },
    spec: { network: 'blue', address: '239.1.1.1' },
    status: {
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Resolved',
          message: 'old',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
    },
  };
  const members = Array.from({ length: 5 }, (_, i) => ({
    endpoint: `10.0.0.${i}`,
    node: 'n',
    endpointID: i,
    via: 'igmp' as const,
  }));
  const resolved = {
    key: 'team/g',
    members,
    counts: { members: 5, nodes: 1, igmp: 5, mld: 0, static: 0, selector: 0, nested: 0, unresolved: 0 },
    conditions: [
      { type: 'Ready', status: 'True' as const, reason: 'Resolved', message: '5 members on 1 nodes' },
    ],
  };

  test('keeps lastTransitionTime while a condition holds and moves it when it flips', () => {
    const now = '2026-11-28T10:00:00Z';
    const kept = applyConditions(
      g.status!.conditions,
      [{ type: 'Ready', status: 'True', reason: 'R', message: 'm' }],
      now,
    );
    expect(kept[0].lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    const flipped = applyConditions(
      g.status!.conditions,
      [{ type: 'Ready', status: 'False', reason: 'R', message: 'm' }],
      now,
    );
    expect(flipped[0].lastTransitionTime).toBe(now);
  });

  test('truncates the member list past the cap, keeps exact counts and says so', () => {
    const s = desiredGroupStatus(g, resolved, '2026-11-28T10:00:00Z', 3);
    expect(s.members).toHaveLength(3);
    expect(s.counts!.members).toBe(5);
    expect(s.observedGeneration).toBe(2);
    expect(s.conditions!.find((c) => c.type === 'MembersTruncated')!.message).toBe(
      'status lists the first 3 of 5 members',
    );
  });

  test('truncates the member list to a byte budget, whatever the member count', () => {
    const budget = JSON.stringify(resolved.members.slice(0, 2)).length + 2;
    const s = desiredGroupStatus(g, resolved, '2026-11-28T10:00:00Z', 1000, budget);
    expect(s.members).toHaveLength(2);
    expect(s.counts!.members).toBe(5);
    const c = s.conditions!.find((x) => x.type === 'MembersTruncated')!;
    expect(c.reason).toBe('StatusTooLarge');
    expect(c.message).toMatch(/^status lists the first 2 of 5 members/);
  });

  test('sameStatus ignores key order, so an unchanged status is not rewritten', () => {
    const s = desiredGroupStatus(g, resolved, '2026-11-28T10:00:00Z');
    const reordered = JSON.parse(
      JSON.stringify({
        conditions: s.conditions,
        counts: s.counts,
        members: s.members,
        observedGeneration: 2,
      }),
    );
    expect(sameStatus(s, reordered)).toBe(true);
    expect(sameStatus(s, { ...reordered, members: members.slice(1) })).toBe(false);
  });
});

describe('network status', () => {
  test('two networks with one networkID are both Ready=False naming the other', () => {
    const vn = (name: string, networkID: number): VirtualNetwork => ({
      metadata: { name },
      spec: { networkID, subnets: ['10.0.0.0/16'] },
    });
    const st = desiredNetworkStatuses(
      [vn('a', 1), vn('b', 1), vn('c', 2)],
      () => 0,
      () => 0,
      '2026-11-28T10:00:00Z',
    );
    expect(st.get('a')!.conditions![0]).toMatchObject({ status: 'False', reason: 'NetworkIDConflict' });
    expect(st.get('a')!.conditions![0].message).toBe('spec.networkID 1 is also used by VirtualNetwork "b"');
    expect(st.get('c')!.conditions![0].status).toBe('True');
  });
});

describe('building blocks', () => {
  test('label selectors follow metav1 semantics', () => {
    const labels = { app: 'feed', tier: 'a' };
    expect(selectorMatches({ matchLabels: { app: 'feed' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'x' } }, labels)).toBe(false);
    expect(
      selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['a', 'b'] }] }, labels),
    ).toBe(true);
    expect(
      selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels),
    ).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, labels)).toBe(
      false,
    );
  });

  test('source filters merge like RFC 9776 interface state', () => {
    const inc = (...s: string[]) => ({ mode: 'include' as const, sources: s });
    const exc = (...s: string[]) => ({ mode: 'exclude' as const, sources: s });
    expect(mergeFilters(inc('a', 'b'), inc('c'))).toEqual(inc('a', 'b', 'c'));
    expect(mergeFilters(exc('a', 'b'), exc('b', 'c'))).toEqual(exc('b'));
    expect(mergeFilters(inc('a'), exc('a', 'b'))).toEqual(exc('b'));
  });

  test('addresses are canonicalized and classified', () => {
    expect(canonicalAddress('FF3E:0000::8000:1')).toBe('ff3e::8000:1');
    expect(canonicalAddress('01:00:5E:01:02:03')).toBe('01:00:5e:01:02:03');
    expect([isGroupAddress('239.1.1.1'), isGroupAddress('10.0.0.1'), isGroupAddress('ff02::1')]).toEqual([
      true,
      false,
      true,
    ]);
    expect([isGroupAddress('01:00:5e:00:00:01'), isGroupAddress('02:00:00:00:00:01')]).toEqual([true, false]);
  });

  test('a report round-trips through the lookup port’s records', () => {
    const spec = {
      node: 'n1',
      underlay: { address: '192.0.2.1', port: 4790 },
      poolIndex: 3,
      endpoints: [
        {
          endpointID: 1,
          network: 'blue',
          mac: '02:00:00:00:00:01',
          ips: ['10.0.0.1'],
          pod: { namespace: 't', name: 'p' },
        },
      ],
      memberships: [
        { network: 'blue', group: '239.1.1.1', endpointID: 1 },
        {
          network: 'blue',
          group: '232.1.1.1',
          endpointID: 1,
          filter: { mode: 'include' as const, sources: ['10.0.0.9'] },
        },
      ],
    };
    const d = fromReport({ metadata: { name: 'n1' }, spec });
    expect(d.memberships[0].filter).toEqual({ mode: 'exclude', sources: [] });
    expect(toReportSpec(d)).toEqual(spec);
    expect(() => toReportSpec({ ...d, endpoints: [{ ...d.endpoints[0], node: 'n2' }] })).toThrow(
      'record of node "n2" in the report of node "n1"',
    );
  });
});
