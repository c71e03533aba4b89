// One endpoint's state that the MembershipReport CRD cannot hold (too many sources, an entry the
// apiserver's validation refuses, more bytes than etcd should store) is left out of its node's
// report, with a Warning Event on its pod, a counter and the report's Truncated condition, and every
// other endpoint's memberships are still published, then and afterwards. On a private cluster: its
// report CRD has the status subresource whatever CRDs other test files apply to the shared one.
import { jest } from '@jest/globals';
import type { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import { LIMITS } from '../../pkg/lookup/limits.js';
import type { EndpointRecord, MembershipRecord } from '../../pkg/lookup/port.js';
import { createNamespace, ensureCluster, stopCluster, type Cluster } from '../harness/k8s.js';
import { adapter, membersOf, until } from './adapter-helpers.js';
import { eventually, installCrds } from './fixtures.js';

jest.setTimeout(240_000);

const node = 'cnlimits-a';
let cluster: Cluster;
let ns: string;
const open: KubernetesLookup[] = [];
const track = (l: KubernetesLookup): KubernetesLookup => (open.push(l), l);

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnlim${process.pid}` });
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'tenant');
});

afterEach(async () => {
  for (const l of open.splice(0)) await l.dispose();
  await cluster.kubectl(['delete', 'membershipreport', node, '--ignore-not-found']);
});

afterAll(async () => {
  if (cluster) await stopCluster(cluster);
});

const self = { name: node, address: '192.0.2.41', port: 4790, poolIndex: 1 };
const endpoint = (id: number): EndpointRecord => ({
  network: 'blue',
  node,
  endpointId: id,
  mac: `02:00:00:00:01:${id.toString(16).padStart(2, '0')}`,
  ips: [`10.41.0.${id}`],
  pod: { namespace: ns, name: `pod-${id}` },
});
const sources = (n: number) => Array.from({ length: n }, (_, i) => `10.9.${i >> 8}.${i & 255}`);
const join = (id: number, group: string, nSources = 0): MembershipRecord => ({
  network: 'blue',
  group,
  node,
  endpointId: id,
  filter: nSources ? { mode: 'include', sources: sources(nSources) } : { mode: 'exclude', sources: [] },
});

interface StoredReport {
  spec: { memberships?: Array<{ endpointID: number; group: string }> };
  status?: {
    leftOut?: { memberships?: number };
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
  };
}
const stored = async (): Promise<StoredReport> =>
  JSON.parse(await cluster.kubectl(['get', 'membershipreport', node, '-o', 'json'])) as StoredReport;
const storedGroups = (r: StoredReport) => (r.spec.memberships ?? []).map((m) => `${m.endpointID}:${m.group}`);
const truncated = (r: StoredReport) => r.status?.conditions?.find((c) => c.type === 'Truncated');

async function podEvents(pod: string): Promise<Array<{ reason: string; message: string; type: string }>> {
  const list = JSON.parse(
    await cluster.kubectl([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      `involvedObject.kind=Pod,involvedObject.name=${pod}`,
      '-o',
      'json',
    ]),
  ) as { items: Array<{ reason: string; message: string; type: string }> };
  return list.items;
}

test('an endpoint’s too many sources and a membership the apiserver refuses do not hold back the others', async () => {
  const a = track(adapter(cluster));
  const other = track(adapter(cluster));
  await a.registerNode(self);
  await a.publishEndpoints(node, [endpoint(1), endpoint(2)]);
  // 65 sources: one more than the CRD allows. 10.1.1.1 is no group: only the apiserver's CEL rule
  // refuses it, so the writer learns of it from the 422 and must leave out just that entry.
  await a.reportMemberships(node, [
    join(1, '239.1.1.1', LIMITS.sourcesPerMembership + 1),
    join(1, '10.1.1.1'),
    join(2, '239.2.2.2', LIMITS.sourcesPerMembership),
  ]);

  expect(storedGroups(await stored())).toEqual(['2:239.2.2.2']);
  await until(other, (d) => membersOf(d, '239.2.2.2').includes(`${node}/2`));

  // Not frozen: a later join of the other endpoint is published too.
  await a.reportMemberships(node, [
    join(1, '239.1.1.1', LIMITS.sourcesPerMembership + 1),
    join(1, '10.1.1.1'),
    join(2, '239.2.2.2', LIMITS.sourcesPerMembership),
    join(2, '239.2.2.3'),
  ]);
  await until(other, (d) => membersOf(d, '239.2.2.3').includes(`${node}/2`));
  expect(storedGroups(await stored())).toEqual(['2:239.2.2.2', '2:239.2.2.3']);

  const report = await eventually('the report’s Truncated condition', async () => {
    const r = await stored();
    return truncated(r)?.status === 'True' ? r : undefined;
  });
  expect(truncated(report)).toMatchObject({ reason: 'EntriesRejected' });
  expect(truncated(report)!.message).toMatch(
    /^2 entries left out \((1 too-many-sources, 1 rejected|1 rejected, 1 too-many-sources)\)/,
  );
  expect(report.status?.leftOut).toEqual({ endpoints: 0, memberships: 2 });

  // Each left-out entry once: the second write left out the same two.
  expect(a.stats.reportDrops).toEqual({ 'too-many-sources': 1, rejected: 1 });
  const events = await eventually('two Warning events on pod-1', async () => {
    const e = await podEvents('pod-1');
    return e.length >= 2 ? e : undefined;
  });
  expect(events.map((e) => `${e.type} ${e.reason}`)).toEqual(Array(2).fill('Warning MembershipNotPublished'));
  expect(events.map((e) => e.message).sort()).toEqual([
    expect.stringMatching(
      /membership of 10\.1\.1\.1 left out \(rejected: refused by the apiserver: spec\.memberships\[\d+\]\.group/,
    ),
    expect.stringMatching(/membership of 239\.1\.1\.1 left out \(too-many-sources: 65 sources, at most 64\)/),
  ]);
  expect(await podEvents('pod-2')).toEqual([]);

  // When the endpoint behaves, the report is complete again and says so.
  await a.reportMemberships(node, [join(1, '239.1.1.1', 3), join(2, '239.2.2.2')]);
  const complete = await eventually('the report complete again', async () => {
    const r = await stored();
    return truncated(r)?.status === 'False' ? r : undefined;
  });
  expect(storedGroups(complete)).toEqual(['1:239.1.1.1', '2:239.2.2.2']);
});

test('an endpoint with more memberships than a report’s bytes allow cannot crowd out another endpoint', async () => {
  const a = track(adapter(cluster));
  await a.registerNode(self);
  await a.publishEndpoints(node, [endpoint(1), endpoint(2)]);
  // 4,096 groups with 64 sources each: about 12 MB of report, far past etcd's 1.5 MiB.
  const hog = Array.from({ length: LIMITS.groupsPerEndpointMax }, (_, i) =>
    join(1, `239.10.${i >> 8}.${i & 255}`, LIMITS.sourcesPerMembership),
  );
  await a.reportMemberships(node, [...hog, join(2, '239.2.2.2')]);

  const r = await stored();
  expect(storedGroups(r)).toContain('2:239.2.2.2');
  const kept = r.spec.memberships!.length;
  expect(kept).toBeGreaterThan(100);
  expect(kept).toBeLessThan(hog.length);
  // As etcd stores it: compact JSON, managed fields included.
  const whole = await cluster.kubectl([
    'get',
    'membershipreport',
    node,
    '-o',
    'json',
    '--show-managed-fields',
  ]);
  expect(Buffer.byteLength(JSON.stringify(JSON.parse(whole)))).toBeLessThan(1024 * 1024);
  const c = await eventually('the report’s Truncated condition', async () => truncated(await stored()));
  expect(c).toMatchObject({ status: 'True', reason: 'LimitsExceeded' });
  expect(c.message).toContain(
    `${hog.length + 1 - kept} entries left out (${hog.length + 1 - kept} report-bytes)`,
  );
  expect(a.stats.reportDrops).toEqual({ 'report-bytes': hog.length + 1 - kept });
});
