// The agent's cache of a directory, measured on the real adapter: a KubernetesLookup (the agent's
// `--lookup kubernetes`) lists and watches a cluster's VirtualNetworks, MulticastGroups and
// MembershipReports, builds its Directory, and the data plane's resolution index is built over it.
// Run alone in a fresh process (`node --expose-gc`), so the heap delta is that cache and nothing else.
// Usage: node --expose-gc agent-cache.js KUBECONFIG [LOCAL_NODE]; prints one JSON line.
import { loadKubeConfig } from '../pkg/k8s/config.js';
import { KubernetesLookup } from '../pkg/lookup/kubernetes/lookup.js';
import type { Directory } from '../pkg/lookup/port.js';
import { buildIndex } from '../pkg/resolve/index.js';

function gc(): void {
  const g = (global as unknown as { gc?: () => void }).gc;
  if (!g) throw new Error('run with node --expose-gc');
  g();
  g();
}

async function main(): Promise<void> {
  const [kubeconfig, localNode] = process.argv.slice(2);
  if (!kubeconfig) throw new Error('usage: agent-cache KUBECONFIG [LOCAL_NODE]');
  // Warm up what every run loads anyway (modules, TLS), so it is not counted as cache.
  const probe = new KubernetesLookup({ kubeConfig: loadKubeConfig(kubeconfig) });
  await probe.dispose();
  gc();
  const before = process.memoryUsage();
  const started = Date.now();
  const lookup = new KubernetesLookup({ kubeConfig: loadKubeConfig(kubeconfig) });
  await lookup.start();
  const directory = await new Promise<Directory>((resolve) => {
    const off: () => void = lookup.subscribe((d) => {
      queueMicrotask(() => off());
      resolve(d);
    });
  });
  const syncSeconds = (Date.now() - started) / 1000;
  const t = process.hrtime.bigint();
  const index = buildIndex(directory, localNode ?? directory.nodes[0]?.name ?? '');
  const indexMs = Number(process.hrtime.bigint() - t) / 1e6;
  gc();
  const after = process.memoryUsage();
  const mb = (n: number): number => +(n / 2 ** 20).toFixed(1);
  console.log(
    JSON.stringify({
      nodes: directory.nodes.length,
      endpoints: directory.endpoints.length,
      groups: directory.groups.length,
      memberships: directory.memberships.length,
      cacheHeapMB: mb(after.heapUsed - before.heapUsed),
      cacheRssMB: mb(after.rss - before.rss),
      listAndWatchSyncSeconds: +syncSeconds.toFixed(1),
      indexBuildMs: +indexMs.toFixed(0),
    }),
  );
  void index;
  await lookup.dispose();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
