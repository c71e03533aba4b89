// The watch cache (pkg/k8s/watch-cache.ts, on client-node's ListWatch) on the shared test apiserver,
// for a typed collection (ConfigMaps) and a custom resource (MulticastGroups): a list of several
// pages is complete, then additions, updates (with the version they replace) and deletions arrive
// through the watch, and objects are trimmed before the cache keeps them.
import { jest } from '@jest/globals';
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { crd } from '../../pkg/k8s/resources.js';
import { WatchCache, type WatchCacheOptions } from '../../pkg/k8s/watch-cache.js';
import { clusterKubeConfig, createNamespace, ensureCluster, type Cluster } from '../harness/k8s.js';
import { waitFor } from '../harness/wait.js';
import { installCrds } from './fixtures.js';

jest.setTimeout(120_000);

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

type Labeled = KubernetesObject & { data?: unknown; spec?: unknown };

interface Kind {
  kind: string;
  /** A manifest of object `name` whose label `v` is `version`. */
  manifest: (name: string, version: string) => object;
  cacheOf: () => Pick<WatchCacheOptions<Labeled>, 'path' | 'listPage'>;
}

const kinds: Kind[] = [
  {
    kind: 'ConfigMap',
    manifest: (name, v) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: ns, labels: { v } },
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
    kind: 'MulticastGroup',
    manifest: (name, v) => ({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'MulticastGroup',
      metadata: { name, namespace: ns, labels: { v } },
      spec: { network: 'wc', address: '239.1.2.3' },
    }),
    cacheOf: () => {
      const custom = clusterKubeConfig(cluster).makeApiClient(CustomObjectsApi);
      return {
        path: `/apis/castnet.io/v1alpha1/namespaces/${ns}/multicastgroups`,
        listPage: (page) =>
          custom.listNamespacedCustomObject({ ...crd('multicastGroup'), namespace: ns, ...page }),
      };
    },
  },
];

test.each(kinds)('$kind: a paged list, then the watch’s changes', async ({ kind, manifest, cacheOf }) => {
  const prefix = kind.toLowerCase();
  const names = [1, 2, 3, 4, 5].map((i) => `${prefix}-${i}`);
  await cluster.kubectl(['apply', '-f', '-'], {
    input: names.map((n) => stringify(manifest(n, 'a'))).join('---\n'),
  });
  const events: string[] = [];
  const cache = new WatchCache<Labeled>(clusterKubeConfig(cluster), {
    what: `${kind}s in ${ns}`,
    ...cacheOf(),
    labelSelector: 'v',
    pageSize: 2,
    trim: (o) => {
      delete o.data;
      delete o.spec;
    },
    onUpsert: (o, previous) =>
      events.push(`${o.metadata?.name}:${o.metadata?.labels?.v}<${previous?.metadata?.labels?.v ?? '-'}`),
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
  await cluster.kubectl(['apply', '-f', '-'], { input: stringify(manifest(`${prefix}-6`, 'a')) });
  await cluster.kubectl(['apply', '-f', '-'], { input: stringify(manifest(`${prefix}-1`, 'b')) });
  await cluster.kubectl(['-n', ns, 'delete', kind.toLowerCase(), `${prefix}-2`]);
  await waitFor(() => events.length >= 3, { what: 'three watch events' });
  expect(events).toEqual([`${prefix}-6:a<-`, `${prefix}-1:b<a`, `${prefix}-2:deleted`]);
  expect(cached()).toEqual([1, 3, 4, 5, 6].map((i) => `${prefix}-${i}`));
  expect(cache.get(`${prefix}-1`, ns)?.metadata?.labels?.v).toBe('b');
  expect(cache.get(`${prefix}-6`, ns)?.data ?? cache.get(`${prefix}-6`, ns)?.spec).toBeUndefined();
  expect({ relists: cache.relists, restarts: cache.restarts }).toEqual({ relists: 1, restarts: 0 });
});
