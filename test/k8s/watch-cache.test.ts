// The watch cache (pkg/k8s/watch-cache.ts, on client-node's ListWatch) on the shared test apiserver,
// for a typed collection (ConfigMaps) and a custom resource (VirtualNetworks): a list of several
// pages is complete, then additions, updates (with the version they replace) and deletions arrive
// through the watch, and objects are trimmed before the cache keeps them. (Not MulticastGroups: a
// controller test on the same cluster counts the group statuses it writes.)
import { jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { crd } from '../../pkg/k8s/resources.js';
import { WatchCache, type WatchCacheOptions } from '../../pkg/k8s/watch-cache.js';
import { clusterKubeConfig, createNamespace, ensureCluster, type Cluster } from '../harness/k8s.js';
import { waitFor } from '../../pkg/base/async.js';
import { installCrds } from './fixtures.js';

jest.setTimeout(120_000);

const tag = randomBytes(3).toString('hex');
const labels = (v: string) => ({ 'castnet-wc': tag, v });
let cluster: Cluster;
let ns: string;
const caches: Array<WatchCache<KubernetesObject>> = [];

beforeAll(async () => {
  cluster = await ensureCluster();
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'cnwc');
});

afterEach(() => {
  for (const c of caches.splice(0)) c.dispose();
});

afterAll(async () => {
  await cluster
    ?.kubectl(['delete', 'virtualnetworks', '-l', `castnet-wc=${tag}`, '--ignore-not-found'])
    .catch(() => undefined);
});

type Labeled = KubernetesObject & { data?: unknown; spec?: unknown };

interface Kind {
  kind: string;
  /** The name of object `i`, and its namespace. */
  name: (i: number) => string;
  namespace: () => string | undefined;
  /** A manifest of object `name` whose label `v` is `version`. */
  manifest: (name: string, version: string) => object;
  cacheOf: () => Pick<WatchCacheOptions<Labeled>, 'path' | 'listPage'>;
}

const kinds: Kind[] = [
  {
    kind: 'ConfigMap',
    name: (i) => `configmap-${i}`,
    namespace: () => ns,
    manifest: (name, v) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: ns, labels: labels(v) },
      data: { big: 'x'.repeat(1000) },
    }),
    cacheOf: () => {
      const core = clusterKubeConfig(cluster).makeApiClient(CoreV1Api);
      return {
        path: `/api/v1/namespaces/${ns}/configmaps`,
        listPage: (page) => core.listNamespacedConfigMap({ namespace: ns, ...page }),
      };
    },
  },
  {
    kind: 'VirtualNetwork',
    name: (i) => `wc-${tag}-${i}`,
    namespace: () => undefined,
    manifest: (name, v) => ({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'VirtualNetwork',
      metadata: { name, labels: labels(v) },
      spec: { networkID: 300000 + parseInt(tag.slice(0, 4), 16), subnets: ['10.99.0.0/16'] },
    }),
    cacheOf: () => {
      const custom = clusterKubeConfig(cluster).makeApiClient(CustomObjectsApi);
      return {
        path: '/apis/castnet.io/v1alpha1/virtualnetworks',
        listPage: (page) => custom.listClusterCustomObject({ ...crd('virtualNetwork'), ...page }),
      };
    },
  },
];

test.each(kinds)('$kind: a paged list, then the watch’s changes', async (k) => {
  const names = [1, 2, 3, 4, 5].map(k.name);
  await cluster.kubectl(['apply', '-f', '-'], {
    input: names.map((n) => stringify(k.manifest(n, 'a'))).join('---\n'),
  });
  const events: string[] = [];
  const cache = new WatchCache<Labeled>(clusterKubeConfig(cluster), {
    what: `${k.kind}s`,
    ...k.cacheOf(),
    labelSelector: `castnet-wc=${tag}`,
    pageSize: 2,
    trim: (o) => {
      delete o.data;
      delete o.spec;
    },
    onUpsert: (o, previous) => {
      // Only this test's changes: a controller another test file runs may write statuses.
      if (previous?.metadata?.labels?.v === o.metadata?.labels?.v) return;
      events.push(`${o.metadata?.name}:${o.metadata?.labels?.v}<${previous?.metadata?.labels?.v ?? '-'}`);
    },
    onDelete: (o) => events.push(`${o.metadata?.name}:deleted`),
  });
  caches.push(cache);
  await cache.start();

  // Three pages of two, one list.
  const cached = (): string[] =>
    cache
      .list()
      .map((o) => o.metadata?.name ?? '')
      .sort();
  expect(cached()).toEqual(names);
  expect(cache.relists).toBe(1);
  expect(events.sort()).toEqual(names.map((n) => `${n}:a<-`));
  expect(cache.list().every((o) => o.data === undefined && o.spec === undefined)).toBe(true);

  events.length = 0;
  await cluster.kubectl(['apply', '-f', '-'], { input: stringify(k.manifest(k.name(6), 'a')) });
  await cluster.kubectl(['apply', '-f', '-'], { input: stringify(k.manifest(k.name(1), 'b')) });
  await cluster.kubectl(['-n', ns, 'delete', k.kind.toLowerCase(), k.name(2)]);
  await waitFor(() => events.length >= 3, { what: 'three watch events' });
  expect(events).toEqual([`${k.name(6)}:a<-`, `${k.name(1)}:b<a`, `${k.name(2)}:deleted`]);
  expect(cached()).toEqual([1, 3, 4, 5, 6].map(k.name));
  expect(cache.get(k.name(1), k.namespace())?.metadata?.labels?.v).toBe('b');
  const added = cache.get(k.name(6), k.namespace());
  expect(added && added.data === undefined && added.spec === undefined).toBe(true);
  expect({ relists: cache.relists, restarts: cache.restarts }).toEqual({ relists: 1, restarts: 0 });
});
