// The real multi-node cluster (scripts/cluster/cluster.sh): kubelets, containerd and kube-proxy per
// node, Multus thick installed from its manifest, castnet installed with the real helm. The suite under
// test/cluster drives it the way a user does: helm, Deployments with the Multus annotation, kubectl.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import { repoRoot } from './cni.js';
import { kubectlFor, type KubectlOptions } from './k8s.js';
import { upstreamBin } from './upstream.js';
import { waitFor as poll, type WaitOptions } from '../../pkg/base/async.js';
import { inPidNetns, runWhere, type Where } from './where.js';

/** waitFor with the cluster's defaults: each probe spawns kubectl, so poll every 250 ms, and allow
 * two minutes (a loaded 2-core machine runs three kubelets). */
export function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  opts: WaitOptions,
): Promise<T> {
  return poll(probe, { timeoutMs: 120_000, intervalMs: 250, ...opts });
}

const clusterScript = path.join(repoRoot, 'scripts/cluster/cluster.sh');
const helmPath = path.join(upstreamBin, 'helm');

export const CASTNET_NAMESPACE = 'castnet-system';
/** The agents' underlay UDP port (the chart's agent.underlayPort default). */
export const UNDERLAY_PORT = 4790;

export interface RealCluster {
  kubeconfigPath: string;
  nodes: string[];
  kubectl(args: string[], opts?: KubectlOptions): Promise<string>;
  /** Runs a command inside a node's network and mount namespaces (as its kubelet sees the node). */
  nodeExec(node: string, cmd: string, args: string[], opts?: { timeoutMs?: number }): Promise<string>;
}

function clusterCommand(args: string[], timeoutMs = 60_000): Promise<string> {
  return run(clusterScript, args, { timeoutMs }).then((r) => r.stdout);
}

/** The running cluster; `make cluster-up` (run by `make test` before this suite) starts it. */
export async function realCluster(): Promise<RealCluster> {
  await clusterCommand(['status']).catch((err: Error) => {
    throw new Error(`the real cluster is not up: run \`make cluster-up\` first (${err.message})`);
  });
  const env = await clusterCommand(['env']);
  const kubeconfigPath = /^KUBECONFIG=(.*)$/m.exec(env)?.[1];
  if (!kubeconfigPath) throw new Error(`cluster.sh env printed no KUBECONFIG: ${env}`);
  const nodes = (await clusterCommand(['nodes'])).split('\n').filter(Boolean);
  return {
    kubeconfigPath,
    nodes,
    kubectl: kubectlFor(kubeconfigPath),
    nodeExec: (node, cmd, args, opts) =>
      clusterCommand(['node-exec', node, cmd, ...args], opts?.timeoutMs ?? 60_000),
  };
}

let imagesOnNodes: Promise<Map<string, string>> | undefined;

/** The reference of image `name` (castnet, workload, pause, multus), built if its inputs changed and
 * imported into every node's containerd (`cluster.sh images`, once per test process). */
export async function imageRef(name: string): Promise<string> {
  imagesOnNodes ??= clusterCommand(['images'], 1_200_000).then(
    (out) =>
      new Map(
        out
          .split('\n')
          .map((l) => l.split(' ')[0] ?? '')
          .filter(Boolean)
          .map((ref) => [ref.slice(ref.lastIndexOf('/') + 1, ref.lastIndexOf(':')), ref]),
      ),
  );
  const ref = (await imagesOnNodes).get(name);
  if (!ref) throw new Error(`no image "${name}" among those scripts/cluster/images.sh built`);
  return ref;
}

/** Tags the castnet image anew on every node, as a registry would serve the next release; resolves
 * with the new tag (for helmInstallCastnet) and the full reference. */
export async function tagCastnetImage(c: RealCluster, tag: string): Promise<{ tag: string; ref: string }> {
  const ref = await imageRef('castnet');
  const tagged = `${ref.slice(0, ref.lastIndexOf(':'))}:${tag}`;
  for (const node of c.nodes) {
    await c.nodeExec(node, 'ctr', [
      '--address',
      '/run/containerd/containerd.sock',
      '-n',
      'k8s.io',
      'images',
      'tag',
      ref,
      tagged,
    ]);
  }
  return { tag, ref: tagged };
}

interface PodList {
  items: { metadata: { name: string }; spec: { nodeName?: string; containers: { image: string }[] } }[];
}

/** The castnet agent pods, optionally only the one on `node`. */
export async function agentPods(c: RealCluster, node?: string): Promise<PodList['items']> {
  const args = [
    '-n',
    CASTNET_NAMESPACE,
    'get',
    'pods',
    '-l',
    'app.kubernetes.io/component=agent',
    '-o',
    'json',
  ];
  if (node) args.push('--field-selector', `spec.nodeName=${node}`);
  return (JSON.parse(await c.kubectl(args)) as PodList).items;
}

/** Waits until every pod of a DaemonSet is updated and ready. */
export async function waitDaemonSet(
  c: RealCluster,
  namespace: string,
  name: string,
  timeoutS = 300,
): Promise<void> {
  await c.kubectl(['-n', namespace, 'rollout', 'status', `daemonset/${name}`, `--timeout=${timeoutS}s`], {
    timeoutMs: (timeoutS + 30) * 1000,
  });
}

/** Multus thick from test/cluster/multus.yaml, as its users install it; idempotent. */
export async function ensureMultus(c: RealCluster): Promise<void> {
  await c.kubectl(['apply', '--server-side', '-f', path.join(repoRoot, 'test/cluster/multus.yaml')]);
  await waitDaemonSet(c, 'kube-system', 'kube-multus-ds');
}

export interface CastnetRelease {
  /** The image tag; the repository comes from the recorded castnet image. */
  tag?: string;
  /** Extra `--set key=value` pairs. */
  set?: string[];
}

/** `helm upgrade --install castnet charts/castnet` with only the image values pointing at the
 * locally imported image, as the README's install section does on a real cluster. */
export async function helmInstallCastnet(c: RealCluster, release: CastnetRelease = {}): Promise<void> {
  const ref = await imageRef('castnet');
  const colon = ref.lastIndexOf(':');
  const repository = ref.slice(0, colon);
  const tag = release.tag ?? ref.slice(colon + 1);
  const sets = [`image.repository=${repository}`, `image.tag=${tag}`, ...(release.set ?? [])];
  // Helm installs crds/ only once and never upgrades them: a user applies them before an upgrade.
  await c.kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    '-f',
    path.join(repoRoot, 'charts/castnet/crds'),
  ]);
  await run(
    helmPath,
    [
      ...['upgrade', '--install', 'castnet', path.join(repoRoot, 'charts/castnet')],
      ...['--kubeconfig', c.kubeconfigPath, '--namespace', CASTNET_NAMESPACE, '--create-namespace'],
      ...sets.flatMap((s) => ['--set', s]),
      ...['--wait', '--timeout', '5m'],
    ],
    { timeoutMs: 360_000 },
  );
  await waitDaemonSet(c, CASTNET_NAMESPACE, 'castnet-agent');
}

export async function helmUninstallCastnet(c: RealCluster): Promise<void> {
  await run(
    helmPath,
    ['uninstall', 'castnet', '--kubeconfig', c.kubeconfigPath, '--namespace', CASTNET_NAMESPACE, '--wait'],
    { timeoutMs: 360_000 },
  );
}

/** A fresh namespace `<prefix>-<random>`; deleteNamespace() removes it. */
export async function createNamespace(c: RealCluster, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await c.kubectl(['create', 'namespace', name]);
  return name;
}

export async function deleteNamespace(c: RealCluster, name: string): Promise<void> {
  await c.kubectl(['delete', 'namespace', name, '--wait=true', '--timeout=120s'], { timeoutMs: 150_000 });
}

/** Applies objects (server-side, so re-applying is idempotent). */
export async function apply(c: RealCluster, objects: object[]): Promise<void> {
  await c.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], {
    input: objects.map((o) => JSON.stringify(o)).join('\n'),
  });
}

/** A castnet VirtualNetwork and the NetworkAttachmentDefinition Multus uses to attach pods to it. */
export function castnetNetwork(o: {
  namespace: string;
  name: string;
  networkID: number;
  subnet: string;
  ipam?: Record<string, unknown>;
}): object[] {
  return [
    {
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'VirtualNetwork',
      metadata: { name: o.name },
      spec: { networkID: o.networkID, subnets: [o.subnet] },
    },
    {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: o.name, namespace: o.namespace },
      spec: {
        config: JSON.stringify({
          cniVersion: '1.1.0',
          name: o.name,
          type: 'castnet',
          network: o.name,
          agentSocket: '/run/castnet/agent.sock',
          ...(o.ipam ? { ipam: o.ipam } : {}),
        }),
      },
    },
  ];
}

/**
 * What a test file on the real cluster starts from, as a user's cluster is: Multus thick and castnet
 * (helm) installed, and a fresh namespace. network() declares a castnet network named
 * `<namespace>-<suffix>` that dispose() deletes with the namespace; CASTNET_TEST_KEEP=1 leaves both
 * for a look after a failure.
 */
export interface CastnetTestbed {
  c: RealCluster;
  ns: string;
  /** The VirtualNetwork and its NetworkAttachmentDefinition (to apply()), and the network's name. */
  network(o: { suffix: string; networkID: number; subnet: string; ipam?: Record<string, unknown> }): {
    name: string;
    objects: object[];
  };
  dispose(): Promise<void>;
}

export async function castnetTestbed(prefix: string, release?: CastnetRelease): Promise<CastnetTestbed> {
  const c = await realCluster();
  await ensureMultus(c);
  await helmInstallCastnet(c, release);
  const ns = await createNamespace(c, prefix);
  const networks: string[] = [];
  return {
    c,
    ns,
    network: ({ suffix, ...o }) => {
      const name = `${ns}-${suffix}`;
      networks.push(name);
      return { name, objects: castnetNetwork({ namespace: ns, name, ...o }) };
    },
    dispose: async () => {
      if (process.env.CASTNET_TEST_KEEP) return;
      await deleteNamespace(c, ns).catch(() => undefined);
      for (const name of networks)
        await c.kubectl(['delete', 'virtualnetwork', name, '--ignore-not-found']).catch(() => undefined);
    },
  };
}

export interface WorkloadOptions {
  namespace: string;
  name: string;
  /** The node to run on; absent: wherever the scheduler puts it. */
  node?: string;
  image: string;
  /** NetworkAttachmentDefinitions in the Multus annotation (interfaces net1, net2, ...): names, or
   * network selection elements, e.g. with `cni-args` for castnet (allowedAddressPairs). */
  networks: (string | NetworkSelection)[];
  labels?: Record<string, string>;
  replicas?: number;
  /** The container's shell script (default: sleep forever). */
  script?: string;
}

/** A Multus network selection element: the attachment's name and what its CNI gets in args.cni. */
export interface NetworkSelection {
  name: string;
  'cni-args'?: Record<string, unknown>;
}

/** The Multus annotation: the short comma-separated form when every element is only a name. */
function networksAnnotation(networks: (string | NetworkSelection)[]): string {
  if (networks.every((n) => typeof n === 'string')) return networks.join(',');
  return JSON.stringify(networks.map((n) => (typeof n === 'string' ? { name: n } : n)));
}

/** A Deployment of workload pods on one node, attached to castnet through Multus. */
export function workloadDeployment(o: WorkloadOptions): object {
  const labels = { app: o.name, ...(o.labels ?? {}) };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      replicas: o.replicas ?? 1,
      selector: { matchLabels: { app: o.name } },
      template: {
        metadata: {
          labels,
          annotations: o.networks.length
            ? { 'k8s.v1.cni.cncf.io/networks': networksAnnotation(o.networks) }
            : {},
        },
        spec: {
          ...(o.node ? { nodeSelector: { 'kubernetes.io/hostname': o.node } } : {}),
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'main',
              image: o.image,
              imagePullPolicy: 'IfNotPresent',
              command: ['/bin/sh', '-c', o.script ?? 'exec sleep 1000000'],
            },
          ],
        },
      },
    },
  };
}

export interface PodInfo {
  name: string;
  node: string;
  uid: string;
  labels: Record<string, string>;
  /** Interface name → IPs, from Multus' network-status annotation. */
  ips: Record<string, string[]>;
  ready: boolean;
}

interface PodJson {
  metadata: {
    name: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: { nodeName?: string };
  status: { conditions?: { type: string; status: string }[] };
}

function podInfo(p: PodJson): PodInfo {
  const status = p.metadata.annotations?.['k8s.v1.cni.cncf.io/network-status'];
  const ips: Record<string, string[]> = {};
  for (const n of status ? (JSON.parse(status) as { interface?: string; ips?: string[] }[]) : []) {
    if (n.interface) ips[n.interface] = n.ips ?? [];
  }
  return {
    name: p.metadata.name,
    node: p.spec.nodeName ?? '',
    uid: p.metadata.uid,
    labels: p.metadata.labels ?? {},
    ips,
    ready: p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
  };
}

/** The pod's first castnet address (Multus' net1); throws naming the pod when it has none. */
export function net1Address(pod: PodInfo): string {
  const ip = pod.ips.net1?.[0];
  if (!ip) throw new Error(`pod ${pod.name} has no net1 address`);
  return ip;
}

export async function listPods(c: RealCluster, namespace: string, selector: string): Promise<PodInfo[]> {
  const out = await c.kubectl(['-n', namespace, 'get', 'pods', '-l', selector, '-o', 'json']);
  return (JSON.parse(out) as { items: PodJson[] }).items.map(podInfo);
}

/** Waits until `count` pods match `selector`, all Ready and with an address on net1. */
export function waitPods(
  c: RealCluster,
  namespace: string,
  selector: string,
  count: number,
): Promise<PodInfo[]> {
  return waitFor(
    async () => {
      const pods = await listPods(c, namespace, selector);
      const ok = pods.filter((p) => p.ready && (p.ips.net1?.length ?? 0) > 0);
      return ok.length === count && pods.length === count ? ok : undefined;
    },
    { what: `${count} ready pods ${selector} in ${namespace}`, timeoutMs: 120_000 },
  );
}

export function podExec(c: RealCluster, namespace: string, pod: string, script: string): Promise<string> {
  return c.kubectl(['-n', namespace, 'exec', pod, '--', '/bin/sh', '-c', script], { timeoutMs: 120_000 });
}

/** The pid of a pod's sandbox (its network namespace's holder), from the node's containerd. */
export async function podSandboxPid(c: RealCluster, namespace: string, pod: PodInfo): Promise<number> {
  const crictl = [
    path.join(upstreamBin, 'crictl'),
    '--runtime-endpoint',
    'unix:///run/containerd/containerd.sock',
  ];
  const ids = await c.nodeExec(pod.node, crictl[0], [
    ...crictl.slice(1),
    ...['pods', '--namespace', namespace, '--name', pod.name, '--state', 'ready', '-q'],
  ]);
  const id = ids.split('\n').find(Boolean);
  if (!id) throw new Error(`no ready sandbox for pod ${namespace}/${pod.name} on ${pod.node}`);
  const info = JSON.parse(await c.nodeExec(pod.node, crictl[0], [...crictl.slice(1), 'inspectp', id])) as {
    info?: { pid?: number };
  };
  const pid = info.info?.pid;
  if (!pid) throw new Error(`crictl inspectp ${id} gave no pid`);
  return pid;
}

/** The pod's network namespace, for programs run from the host (../harness/where.ts). */
export async function podWhere(c: RealCluster, namespace: string, pod: PodInfo): Promise<Where> {
  return inPidNetns(`${namespace}/${pod.name}`, await podSandboxPid(c, namespace, pod));
}

/** Runs a command in a pod's network namespace from the host (for what a pod may not do itself). */
export async function inPodNetns(
  c: RealCluster,
  namespace: string,
  pod: PodInfo,
  cmd: string[],
): Promise<string> {
  const [program, ...args] = cmd;
  return (await runWhere(await podWhere(c, namespace, pod), program!, args)).stdout;
}

// ---- traffic: real applications in the pods ----------------------------------------------------

/** Workload pods wait for /tmp/start (written by startReceivers) before running their receivers, so a
 * test can prepare the pod's network (e.g. block its IGMP) before the first join. */
export const WAIT_FOR_START =
  'while [ ! -f /tmp/start ]; do sleep 0.2; done; sh /tmp/start; exec sleep 1000000';

export interface Listen {
  group: string;
  port: number;
}

/** Starts one socat per group: joins it on net1 and appends every datagram it reads to /tmp/rx-<port>. */
export async function startReceivers(
  c: RealCluster,
  namespace: string,
  pod: PodInfo,
  listens: Listen[],
): Promise<void> {
  const ip = net1Address(pod);
  const lines = listens.map(
    (l) =>
      `socat -u UDP4-RECV:${l.port},reuseaddr,ip-add-membership=${l.group}:${ip} OPEN:/tmp/rx-${l.port},creat,append </dev/null >/tmp/socat-${l.port}.log 2>&1 &`,
  );
  const script = Buffer.from(lines.join('\n') + '\n').toString('base64');
  await podExec(
    c,
    namespace,
    pod.name,
    `echo ${script} | base64 -d > /tmp/start.new && mv /tmp/start.new /tmp/start`,
  );
}

/** The datagrams a pod's receiver on `port` has read, one payload per line. */
export async function received(
  c: RealCluster,
  namespace: string,
  pod: string,
  port: number,
): Promise<string[]> {
  const out = await podExec(c, namespace, pod, `cat /tmp/rx-${port} 2>/dev/null || true`);
  return out.split('\n').filter(Boolean);
}

/** Sends one datagram per payload from the pod's net1 address to group:port (loopback off, TTL 4). */
export async function send(
  c: RealCluster,
  namespace: string,
  pod: PodInfo,
  to: Listen,
  payloads: string[],
): Promise<void> {
  const ip = net1Address(pod);
  const dest = `UDP4-DATAGRAM:${to.group}:${to.port},bind=${ip},ip-multicast-if=${ip},ip-multicast-loop=0,ip-multicast-ttl=4`;
  await podExec(
    c,
    namespace,
    pod.name,
    `for m in ${payloads.join(' ')}; do echo "$m" | socat -u - ${dest}; done`,
  );
}

/** Counts each payload's copies: exactly-once means every count is 1. */
export function copies(lines: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of lines) m.set(l, (m.get(l) ?? 0) + 1);
  return m;
}

/** Blocks the pod's IGMP and MLD reports, so it can be a member only by declaration (selector, static). */
export async function blockJoins(c: RealCluster, namespace: string, pod: PodInfo): Promise<void> {
  await inPodNetns(c, namespace, pod, [
    'nft',
    'add table inet castnet_test; add chain inet castnet_test out { type filter hook output priority 0; }; ' +
      'add rule inet castnet_test out ip protocol igmp drop; add rule inet castnet_test out icmpv6 type { mld-listener-report, mld2-listener-report } drop',
  ]);
}
