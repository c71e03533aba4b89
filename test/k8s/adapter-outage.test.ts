// The agent's Kubernetes adapter through apiserver outages, on a private cluster (the shared one never
// goes down): changes made while the apiserver is away reach it when it is back, watches resume, a
// deleted report is re-asserted, and no member is lost.
import { jest } from '@jest/globals';
import {
  ensureCluster,
  restartApiserver,
  startApiserver,
  stopApiserver,
  stopCluster,
  type Cluster,
} from '../harness/k8s.js';
import { installCrds } from './fixtures.js';
import { adapter, endpoint, membersOf, membership, until } from './adapter-helpers.js';
import type { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import { waitFor } from '../../pkg/base/async.js';

jest.setTimeout(300_000);

let cluster: Cluster;
const open: KubernetesLookup[] = [];
const node = (name: string, last: number) => ({
  name,
  address: `192.0.2.${last}`,
  port: 4790,
  poolIndex: last,
});

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnado${process.pid}` });
  await installCrds(cluster);
});

afterAll(async () => {
  for (const l of open) await l.dispose();
  if (cluster) await stopCluster(cluster);
});

test('joins made during an outage arrive after it; a deleted report comes back; nothing is lost', async () => {
  const a = adapter(cluster);
  const b = adapter(cluster);
  open.push(a, b);
  await a.registerNode(node('node-a', 1));
  await b.registerNode(node('node-b', 2));
  await a.publishEndpoints('node-a', [endpoint('node-a', 1, '10.1.0.1'), endpoint('node-a', 2, '10.1.0.2')]);
  await a.reportMemberships('node-a', [membership('node-a', 1, '239.1.1.1')]);
  await until(b, (d) => membersOf(d, '239.1.1.1').length === 1);

  await stopApiserver(cluster);
  // The write fails while the apiserver is down, but the agent's own directory has the join at once
  // (local delivery does not wait for the API), and the adapter keeps retrying.
  const during = a.reportMemberships('node-a', [
    membership('node-a', 1, '239.1.1.1'),
    membership('node-a', 2, '239.2.2.2'),
  ]);
  await expect(during).rejects.toThrow();
  expect(membersOf(a.directory!, '239.2.2.2')).toEqual(['node-a/2']);
  await startApiserver(cluster);

  const after = await until(b, (d) => membersOf(d, '239.2.2.2').length === 1, 30_000);
  expect(membersOf(after, '239.1.1.1')).toEqual(['node-a/1']);
  expect(b.stats.watchRestarts).toBeGreaterThan(0);

  // Someone deletes the report (e.g. a mistaken GC): the adapter notices through its watch and
  // writes it again. A new uid shows the object was deleted and created anew, however quickly.
  const reportUid = async () =>
    (
      JSON.parse(await cluster.kubectl(['get', 'membershipreport', 'node-a', '-o', 'json'])) as {
        metadata: { uid: string };
      }
    ).metadata.uid;
  const deletedUid = await reportUid();
  await cluster.kubectl(['delete', 'membershipreport', 'node-a']);
  await waitFor(async () => (await reportUid()) !== deletedUid, {
    what: 'the adapter to re-create the deleted MembershipReport',
    timeoutMs: 30_000,
  });
  const back = await until(b, (d) => membersOf(d, '239.2.2.2').length === 1, 30_000);
  expect(back.endpoints.filter((e) => e.node === 'node-a')).toHaveLength(2);
  expect(
    JSON.parse(await cluster.kubectl(['get', 'membershipreport', 'node-a', '-o', 'json'])).spec.memberships,
  ).toHaveLength(2);

  // A restart with no pending change: a fresh adapter lists everything, the old ones resume.
  await restartApiserver(cluster);
  const c = adapter(cluster);
  open.push(c);
  const fresh = await until(c, (d) => d.memberships.length === 2, 30_000);
  expect(fresh.nodes.map((n) => n.name).sort()).toEqual(['node-a', 'node-b']);
  await b.reportMemberships('node-b', [membership('node-b', 9, '239.1.1.1')]);
  const merged = await until(a, (d) => membersOf(d, '239.1.1.1').length === 2, 30_000);
  expect(membersOf(merged, '239.1.1.1')).toEqual(['node-a/1', 'node-b/9']);
  // After a restart the apiserver's watch cache no longer reaches back to the adapters' last
  // resourceVersion ("too old", 410): they re-listed, beyond the first list of each of their 3 kinds.
  expect(a.stats.relists).toBeGreaterThan(3);
  expect(b.stats.relists).toBeGreaterThan(3);

  // An agent that starts while the apiserver is down is not held up, and its report lands later.
  await stopApiserver(cluster);
  const late = adapter(cluster);
  open.push(late);
  // registerNode resolves while the apiserver is down (how fast is not this test's business).
  await late.registerNode(node('node-c', 3));
  const pending = late.reportMemberships('node-c', [membership('node-c', 1, '239.1.1.1')]);
  // Settles once the apiserver is back; awaited below, so a failure is not lost in between.
  const settled = pending.then(
    () => undefined,
    (err: unknown) => err,
  );
  await startApiserver(cluster);
  expect(await settled).toBeUndefined();
  const three = await until(a, (d) => membersOf(d, '239.1.1.1').length === 3, 30_000);
  expect(membersOf(three, '239.1.1.1')).toEqual(['node-a/1', 'node-b/9', 'node-c/1']);
});
