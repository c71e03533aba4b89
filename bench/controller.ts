// Controller benchmark on a real kube-apiserver (a private test cluster): 1,000 nodes' reports with
// 100 endpoints and 100 memberships each (100,000 memberships), 10,000 groups. Measures report write
// -> group status (p50/p99) through the real `castnet controller` process, its CPU and RSS, and the
// memory an agent's cache of that directory takes (pkg/resolve index over fromReport records), and
// what one API call costs with a new connection per call (client-node's way) and kept alive (castnet's).
// Run: make bench-controller. Writes bench/results/controller.json.
// Scale down for a quick run: CASTNET_BENCH_NODES=100 CASTNET_BENCH_GROUPS=1000.
import { spawn } from 'node:child_process';
import { processCpuUs, processRssMB } from './proc.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../pkg/k8s/config.js';
import {
  collectionPath,
  crd,
  listCastnet,
  type CastnetKind,
  type CastnetObjects,
} from '../pkg/k8s/resources.js';
import type { MembershipReport, MulticastGroup, VirtualNetwork } from '../pkg/k8s/types.js';
import { listAllPages, WatchCache } from '../pkg/k8s/watch-cache.js';
import { toGroupSpec, toNetworkSpec, fromReport } from '../pkg/lookup/kubernetes/convert.js';
import type { Directory } from '../pkg/lookup/port.js';
import { buildIndex } from '../pkg/resolve/index.js';
import { run } from '../pkg/sys/exec.js';
import { sleep } from '../pkg/base/async.js';

const repo = path.resolve(import.meta.dirname, '../../..');
const NODES = Number(process.env.CASTNET_BENCH_NODES ?? 1000);
const ENDPOINTS_PER_NODE = 100;
const GROUPS = Number(process.env.CASTNET_BENCH_GROUPS ?? 10_000);
const SAMPLES = Number(process.env.CASTNET_BENCH_SAMPLES ?? 200);
const NS = 'bench';
const MAX_HEAP_MB = Number(process.env.CASTNET_BENCH_MAX_HEAP_MB ?? 320);
const NET = 'bench';

const groupAddress = (g: number): string => `239.${(g >> 16) & 255}.${(g >> 8) & 255}.${g & 255}`;
const nodeName = (n: number): string => `node-${String(n).padStart(4, '0')}`;

/** Node n's endpoint i joins group (n*100+i) mod GROUPS, shifted by `shift` for the latency samples. */
function report(n: number, shift = new Map<number, number>()): MembershipReport {
  const endpoints = [];
  const memberships = [];
  for (let i = 0; i < ENDPOINTS_PER_NODE; i++) {
    endpoints.push({
      endpointID: i + 1,
      network: NET,
      mac: `02:${[n >> 8, n & 255, 0, 0, i].map((x) => x.toString(16).padStart(2, '0')).join(':')}`,
      ips: [`10.${n >> 8}.${n & 255}.${i + 1}`],
    });
    const g = (n * ENDPOINTS_PER_NODE + i + (shift.get(i) ?? 0)) % GROUPS;
    memberships.push({ network: NET, group: groupAddress(g), endpointID: i + 1 });
  }
  return {
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MembershipReport',
    metadata: { name: nodeName(n) },
    spec: {
      node: nodeName(n),
      underlay: { address: `192.168.${n >> 8}.${n & 255}`, port: 4790 },
      poolIndex: n,
      endpoints,
      memberships,
    },
  };
}

async function inParallel<T>(items: T[], limit: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/** Creates a castnet object, or replaces the one that exists (the load of an earlier kept run). */
async function createOrReplace<K extends CastnetKind>(
  custom: CustomObjectsApi,
  kind: K,
  obj: CastnetObjects[K],
): Promise<void> {
  const { name, namespace } = obj.metadata;
  try {
    await (namespace
      ? custom.createNamespacedCustomObject({ ...crd(kind), namespace, body: obj })
      : custom.createClusterCustomObject({ ...crd(kind), body: obj }));
  } catch {
    const cur: { metadata: { resourceVersion: string } } = await (namespace
      ? custom.getNamespacedCustomObject({ ...crd(kind), namespace, name })
      : custom.getClusterCustomObject({ ...crd(kind), name }));
    const body = { ...obj, metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion } };
    await (namespace
      ? custom.replaceNamespacedCustomObject({ ...crd(kind), namespace, name, body })
      : custom.replaceClusterCustomObject({ ...crd(kind), name, body }));
  }
}

interface CallCost {
  msPerCall: number;
  clientCpuMsPerCall: number;
}

/**
 * What one API call costs this process: through client-node's own KubeConfig (a new connection and
 * TLS handshake per call) and through castnet's (pkg/k8s/config.ts: one kept-alive agent), in
 * alternating rounds of sequential GETs of one namespace.
 */
async function apiCallCost(kubeconfigPath: string, calls = 100, rounds = 3) {
  const plain = new KubeConfig();
  plain.loadFromFile(kubeconfigPath);
  const clients = { newConnection: plain, keptAlive: loadKubeConfig(kubeconfigPath) };
  const totals = { newConnection: { ms: 0, cpuMs: 0 }, keptAlive: { ms: 0, cpuMs: 0 } };
  for (let r = 0; r < rounds; r++) {
    for (const name of ['newConnection', 'keptAlive'] as const) {
      const kc = clients[name];
      const core = kc.makeApiClient(CoreV1Api);
      await core.readNamespace({ name: NS });
      const cpu = process.cpuUsage();
      const t = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) await core.readNamespace({ name: NS });
      const used = process.cpuUsage(cpu);
      totals[name].ms += Number(process.hrtime.bigint() - t) / 1e6;
      totals[name].cpuMs += (used.user + used.system) / 1e3;
    }
  }
  const cost = (t: { ms: number; cpuMs: number }): CallCost => ({
    msPerCall: +(t.ms / (calls * rounds)).toFixed(2),
    clientCpuMsPerCall: +(t.cpuMs / (calls * rounds)).toFixed(2),
  });
  const [fresh, kept] = [cost(totals.newConnection), cost(totals.keptAlive)];
  return {
    calls: calls * rounds,
    newConnectionPerCall: fresh,
    keptAlive: kept,
    ratio: {
      latency: +(fresh.msPerCall / kept.msPerCall).toFixed(1),
      clientCpu: +(fresh.clientCpuMsPerCall / kept.clientCpuMsPerCall).toFixed(1),
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** CPU seconds (user+system) and current/peak RSS of a process, from /proc. */
function usage(pid: number): { cpuSeconds: number; rssMB: number; peakRssMB: number } {
  return { cpuSeconds: processCpuUs(pid) / 1e6, ...processRssMB(pid) };
}

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

function gc(): void {
  (global as unknown as { gc?: () => void }).gc?.();
}

// Its own cluster (scripts/k8s/cluster.sh, as the test harness uses it), so the load disturbs no test.
// Per run: two benchmarks on one cluster would fight over the same reports and Lease.
const CLUSTER = process.env.CASTNET_BENCH_CLUSTER ?? `cnbench-${process.pid}`;
const clusterScript = path.join(repo, 'scripts/k8s/cluster.sh');
const clusterCmd = async (verb: string): Promise<string> =>
  (await run('env', [`CASTNET_K8S_NAME=${CLUSTER}`, clusterScript, verb], { timeoutMs: 300_000 })).stdout;

async function startCluster(): Promise<{
  kubeconfigPath: string;
  kubectl: (args: string[]) => Promise<string>;
}> {
  await clusterCmd('up');
  const env = Object.fromEntries(
    (await clusterCmd('env'))
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const kubeconfigPath = env.KUBECONFIG;
  const kubectl = path.join(repo, '.cache/bin/kubectl');
  return {
    kubeconfigPath,
    kubectl: async (args) =>
      (await run(kubectl, ['--kubeconfig', kubeconfigPath, ...args], { timeoutMs: 120_000 })).stdout,
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const cluster = await startCluster();
  const kc = loadKubeConfig(cluster.kubeconfigPath);
  const custom = kc.makeApiClient(CustomObjectsApi);
  let controller: ReturnType<typeof spawn> | undefined;
  try {
    await cluster.kubectl(['apply', '--server-side', '-f', path.join(repo, 'charts/castnet/crds')]);
    await cluster.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
    await cluster.kubectl(['create', 'namespace', NS]).catch(() => undefined);
    const vnet: VirtualNetwork = {
      metadata: { name: NET },
      spec: { networkID: 1, subnets: ['10.0.0.0/8'] },
    };
    await createOrReplace(custom, 'virtualNetwork', {
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'VirtualNetwork',
      ...vnet,
    });

    const loadStart = Date.now();
    const groups = Array.from({ length: GROUPS }, (_, g) => g);
    await inParallel(groups, 16, (g) =>
      createOrReplace(custom, 'multicastGroup', {
        apiVersion: 'castnet.io/v1alpha1',
        kind: 'MulticastGroup',
        metadata: { name: `g${g}`, namespace: NS },
        spec: { network: NET, address: groupAddress(g) },
      }),
    );
    const nodes = Array.from({ length: NODES }, (_, n) => n);
    await inParallel(nodes, 16, (n) => createOrReplace(custom, 'membershipReport', report(n)));
    const loadSeconds = (Date.now() - loadStart) / 1000;
    console.log(`loaded ${GROUPS} groups and ${NODES} reports in ${loadSeconds.toFixed(1)} s`);
    const apiCall = await apiCallCost(cluster.kubeconfigPath);
    console.log(`API call cost: ${JSON.stringify(apiCall)}`);

    // The agent's cache: every report and group as the lookup port's records, indexed for resolution.
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const reports: MembershipReport[] = (
      await listAllPages((page) => listCastnet(custom, 'membershipReport', page))
    ).items;
    const mcgs: MulticastGroup[] = (await listAllPages((page) => listCastnet(custom, 'multicastGroup', page)))
      .items;
    const parts = reports.map(fromReport);
    const directory: Directory = {
      networks: [toNetworkSpec(vnet)],
      nodes: parts.map((p) => p.node),
      endpoints: parts.flatMap((p) => p.endpoints),
      groups: mcgs.map(toGroupSpec),
      memberships: parts.flatMap((p) => p.memberships),
    };
    reports.length = 0;
    mcgs.length = 0;
    const index = buildIndex(directory, nodeName(0));
    gc();
    const agentCacheMB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    console.log(
      `agent cache: ${agentCacheMB.toFixed(1)} MB for ${directory.endpoints.length} endpoints, ${directory.memberships.length} memberships`,
    );
    void index;
    // The same directory held by the agent's real adapter (KubernetesLookup: watch caches, records,
    // resolution index), measured in a process of its own so nothing else is counted.
    const adapterCache = JSON.parse(
      (
        await run(
          process.execPath,
          [
            '--expose-gc',
            path.join(import.meta.dirname, 'agent-cache.js'),
            cluster.kubeconfigPath,
            nodeName(0),
          ],
          { timeoutMs: 300_000 },
        )
      ).stdout,
    ) as { cacheHeapMB: number; cacheRssMB: number; listAndWatchSyncSeconds: number; indexBuildMs: number };
    console.log(`agent adapter cache: ${JSON.stringify(adapterCache)}`);

    // The real controller process.
    const metricsPort = await freePort();
    controller = spawn(
      process.execPath,
      [
        path.join(repo, 'dist/cmd/castnet/main.js'),
        'controller',
        `--kubeconfig=${cluster.kubeconfigPath}`,
        `--lease-namespace=${NS}`,
        '--identity=bench',
        '--node-grace=36000',
        `--metrics-addr=127.0.0.1:${metricsPort}`,
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: {
          ...process.env,
          CASTNET_LOG_LEVEL: process.env.CASTNET_LOG_LEVEL ?? 'warn',
          // As the chart runs it (controller.maxHeapMB): V8 collects before growing past this.
          NODE_OPTIONS: `--max-old-space-size=${MAX_HEAP_MB}`,
        },
      },
    );
    const pid = controller.pid!;

    // Watch the groups here the way a user would: the status is what counts.
    const waiting = new Map<string, { member: string; resolve: () => void }>();
    let converged = 0;
    const groupsCache = new WatchCache<MulticastGroup>(kc, {
      what: 'MulticastGroups',
      path: collectionPath('multicastGroup'),
      listPage: (page) => listCastnet(custom, 'multicastGroup', page),
    });
    const check = (g: MulticastGroup): void => {
      const w = waiting.get(g.metadata.name);
      if (w && g.status?.members?.some((m) => `${m.node}/${m.endpointID}` === w.member)) {
        waiting.delete(g.metadata.name);
        w.resolve();
      }
    };
    await groupsCache.start();
    const convergeStart = Date.now();
    for (;;) {
      converged = groupsCache.list().filter((g) => (g.status?.counts?.members ?? 0) > 0).length;
      if (converged >= GROUPS) break;
      if (Date.now() - convergeStart > 30 * 60_000)
        throw new Error(`only ${converged}/${GROUPS} groups converged`);
      await sleep(500);
    }
    const convergeSeconds = (Date.now() - convergeStart) / 1000;
    console.log(`initial convergence: ${GROUPS} group statuses in ${convergeSeconds.toFixed(1)} s`);
    const idle = usage(pid);

    // Steady state: one report write at a time; latency until the affected group's status shows it.
    const poll = setInterval(() => {
      for (const name of waiting.keys()) {
        const g = groupsCache.get(name, NS);
        if (g) check(g);
      }
    }, 5);
    const latencies: number[] = [];
    const shifts = new Map<number, Map<number, number>>();
    const cpuStart = usage(pid);
    const wallStart = Date.now();
    for (let s = 0; s < SAMPLES; s++) {
      const n = (s * 7919) % NODES;
      const i = s % ENDPOINTS_PER_NODE;
      const shift = shifts.get(n) ?? new Map<number, number>();
      shift.set(i, (shift.get(i) ?? 0) + 1 + (s % 13));
      shifts.set(n, shift);
      const target = (n * ENDPOINTS_PER_NODE + i + shift.get(i)!) % GROUPS;
      const seen = new Promise<void>((resolve) =>
        waiting.set(`g${target}`, { member: `${nodeName(n)}/${i + 1}`, resolve }),
      );
      const t = process.hrtime.bigint();
      await createOrReplace(custom, 'membershipReport', report(n, shift));
      await seen;
      latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    clearInterval(poll);
    const cpuEnd = usage(pid);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const metric = (name: string): number =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    const resolves = metric('castnet_controller_resolve_duration_seconds_count');
    const resolveMeanMs = (metric('castnet_controller_resolve_duration_seconds_sum') / resolves) * 1000;
    const steadyWall = (Date.now() - wallStart) / 1000;
    groupsCache.dispose();

    const result = {
      scale: {
        nodes: NODES,
        endpoints: NODES * ENDPOINTS_PER_NODE,
        groups: GROUPS,
        memberships: NODES * ENDPOINTS_PER_NODE,
      },
      reportWriteToStatusMs: {
        samples: latencies.length,
        p50: +percentile(latencies, 50).toFixed(1),
        p99: +percentile(latencies, 99).toFixed(1),
        max: +Math.max(...latencies).toFixed(1),
      },
      controller: {
        initialConvergenceSeconds: +convergeSeconds.toFixed(1),
        resolvePasses: resolves,
        resolveMeanMs: +resolveMeanMs.toFixed(1),
        cpuCoresDuringSamples: +((cpuEnd.cpuSeconds - cpuStart.cpuSeconds) / steadyWall).toFixed(2),
        cpuSecondsInitial: +idle.cpuSeconds.toFixed(1),
        rssMB: +cpuEnd.rssMB.toFixed(0),
        heapUsedMB: +(metric('nodejs_heap_size_used_bytes') / 2 ** 20).toFixed(0),
        peakRssMB: +cpuEnd.peakRssMB.toFixed(0),
      },
      agentCacheMB: +agentCacheMB.toFixed(1),
      agentAdapterCache: adapterCache,
      loadSeconds: +loadSeconds.toFixed(1),
      apiCall,
      controllerMaxOldSpaceMB: MAX_HEAP_MB,
      goals: { p99Ms: 2000, controllerRssMB: 500, agentCacheMB: 100 },
      machine: '2 cores; apiserver, etcd, controller and this load generator on the same machine',
      totalSeconds: +((Date.now() - t0) / 1000).toFixed(0),
    };
    console.log(JSON.stringify(result, null, 2));
    mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
    writeFileSync(path.join(repo, 'bench/results/controller.json'), JSON.stringify(result, null, 2) + '\n');
  } finally {
    controller?.kill('SIGTERM');
    if (!process.env.CASTNET_BENCH_KEEP) await clusterCmd('down');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
