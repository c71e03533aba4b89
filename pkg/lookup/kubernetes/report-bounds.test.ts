import type { MembershipReportSpec, ReportEndpoint, ReportMembership } from '../../k8s/types.js';
import { jsonBytes, LIMITS } from '../limits.js';
import {
  boundReport,
  membershipKey,
  refusedEntries,
  truncationCondition,
  type ReportLimits,
} from './report-bounds.js';

const ep = (id: number): ReportEndpoint => ({
  endpointID: id,
  network: 'blue',
  mac: `02:00:00:00:00:${id.toString(16).padStart(2, '0')}`,
  ips: [`10.1.0.${id}`],
  pod: { namespace: 'tenant', name: `pod-${id}` },
});
const sources = (n: number) => Array.from({ length: n }, (_, i) => `10.9.${i >> 8}.${i & 255}`);
const ms = (id: number, group: string, nSources = 0): ReportMembership => ({
  network: 'blue',
  group,
  endpointID: id,
  ...(nSources ? { filter: { mode: 'include' as const, sources: sources(nSources) } } : {}),
});
const spec = (endpoints: ReportEndpoint[], memberships: ReportMembership[]): MembershipReportSpec => ({
  node: 'n1',
  underlay: { address: '192.0.2.1', port: 4790 },
  poolIndex: 1,
  endpoints,
  memberships,
});
const groupsOf = (s: MembershipReportSpec) => (s.memberships ?? []).map((m) => `${m.endpointID}:${m.group}`);

test('a spec within the limits is written as it is', () => {
  const s = spec([ep(1), ep(2)], [ms(1, '239.1.1.1', 64), ms(2, '239.1.1.2')]);
  expect(boundReport(s)).toEqual({ spec: s, dropped: [] });
});

test('a membership with more sources than the CRD allows is left out, alone, naming its pod', () => {
  const s = spec([ep(1), ep(2)], [ms(1, '239.1.1.1', LIMITS.sourcesPerMembership + 1), ms(2, '239.1.1.2')]);
  const b = boundReport(s);
  expect(groupsOf(b.spec)).toEqual(['2:239.1.1.2']);
  expect(b.dropped).toEqual([
    expect.objectContaining({
      reason: 'too-many-sources',
      endpointID: 1,
      group: '239.1.1.1',
      pod: { namespace: 'tenant', name: 'pod-1' },
      detail: '65 sources, at most 64',
    }),
  ]);
});

const small = (over: Partial<ReportLimits>): ReportLimits => ({ ...LIMITS, ...over });

test('past the membership limit every endpoint keeps its first memberships before any keeps more', () => {
  const hog = Array.from({ length: 10 }, (_, i) => ms(1, `239.0.0.${i + 1}`));
  const s = spec([ep(1), ep(2), ep(3)], [...hog, ms(2, '239.2.2.2'), ms(3, '239.3.3.3')]);
  const b = boundReport(s, new Map(), small({ membershipsPerNode: 5 }));
  // Kept in their original order.
  expect(groupsOf(b.spec)).toEqual([
    '1:239.0.0.1',
    '1:239.0.0.2',
    '1:239.0.0.3',
    '2:239.2.2.2',
    '3:239.3.3.3',
  ]);
  expect(b.dropped.map((d) => d.reason)).toEqual(Array(7).fill('too-many-memberships'));
});

test('the report fits its byte budget: endpoints first, then memberships shared fairly', () => {
  const hog = Array.from({ length: 200 }, (_, i) => ms(1, `239.0.${i >> 8}.${i & 255}`, 64));
  const s = spec([ep(1), ep(2)], [...hog, ms(2, '239.2.2.2', 64)]);
  const budget = 40_000;
  const b = boundReport(s, new Map(), small({ reportBytes: budget }));
  expect(jsonBytes(b.spec)).toBeLessThanOrEqual(budget);
  expect(b.spec.endpoints).toHaveLength(2);
  expect(groupsOf(b.spec)).toContain('2:239.2.2.2');
  expect(b.spec.memberships!.length).toBeGreaterThan(5);
  expect(b.dropped.length + b.spec.memberships!.length).toBe(201);
  expect(new Set(b.dropped.map((d) => d.reason))).toEqual(new Set(['report-bytes']));
});

test('endpoints past the limit are left out with their memberships', () => {
  const s = spec([ep(1), ep(2), ep(3)], [ms(3, '239.3.3.3'), ms(1, '239.1.1.1')]);
  const b = boundReport(s, new Map(), small({ endpointsPerNode: 2 }));
  expect(b.spec.endpoints!.map((e) => e.endpointID)).toEqual([1, 2]);
  expect(groupsOf(b.spec)).toEqual(['1:239.1.1.1']);
  expect(b.dropped.map((d) => `${d.endpointID}:${d.reason}`)).toEqual([
    '3:too-many-endpoints',
    '3:endpoint-dropped',
  ]);
});

test('entries the apiserver refused, named by the causes of its 422, are left out until they change', () => {
  const bad = { ...ms(1, 'not-a-group') };
  const s = spec([ep(1), ep(2)], [ms(2, '239.2.2.2'), bad]);
  const refused = refusedEntries(s, [
    { field: 'spec.memberships[1].group', message: 'must be a multicast IP address or a multicast MAC' },
    { field: 'metadata.name', message: 'not about an entry' },
    { field: 'spec.memberships[7].group', message: 'no such entry' },
  ]);
  expect([...refused.keys()]).toEqual([membershipKey(bad)]);
  const b = boundReport(s, refused);
  expect(groupsOf(b.spec)).toEqual(['2:239.2.2.2']);
  expect(b.dropped).toEqual([
    expect.objectContaining({
      reason: 'rejected',
      detail:
        'refused by the apiserver: spec.memberships[1].group: must be a multicast IP address or a multicast MAC',
    }),
  ]);
  // A changed entry is a new entry: it is tried again.
  const fixed = spec([ep(1), ep(2)], [ms(2, '239.2.2.2'), ms(1, '239.1.1.1')]);
  expect(boundReport(fixed, refused).dropped).toEqual([]);
});

test('the Truncated condition counts what was left out by reason and names the first entries', () => {
  expect(truncationCondition([])).toMatchObject({ type: 'Truncated', status: 'False', reason: 'Complete' });
  const s = spec([ep(1)], [ms(1, '239.1.1.1', 65), ms(1, '239.1.1.2', 65)]);
  const c = truncationCondition(boundReport(s).dropped);
  expect(c).toMatchObject({ type: 'Truncated', status: 'True', reason: 'LimitsExceeded' });
  expect(c.message).toBe(
    '2 entries left out (2 too-many-sources): ' +
      'pod tenant/pod-1 endpoint 1 on blue: membership of 239.1.1.1 left out (too-many-sources: 65 sources, at most 64); ' +
      'pod tenant/pod-1 endpoint 1 on blue: membership of 239.1.1.2 left out (too-many-sources: 65 sources, at most 64)',
  );
});
