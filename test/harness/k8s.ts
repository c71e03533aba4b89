// A real Kubernetes control plane for tests: etcd + kube-apiserver on loopback, started by
// scripts/k8s/cluster.sh from the binaries `make upstream` builds. No kubelet, scheduler or
// controller-manager: tests create Node and Pod objects directly, and deleted namespaces stay
// Terminating (nothing finalizes them). See docs/testing.md.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../pkg/k8s/config.js';
import { run } from '../../pkg/sys/exec.js';
import { upstreamBin } from './upstream.js';
import { errorMessage } from '../../pkg/base/errors.js';

export { upstreamBin };

const clusterScript = path.resolve(import.meta.dirname, '../../scripts/k8s/cluster.sh');
const kubectlPath = path.join(upstreamBin, 'kubectl');

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Impersonates this user, e.g. `system:serviceaccount:ns:name` (the admin may impersonate). */
  as?: string;
  /** Groups for the impersonated user. */
  asGroups?: string[];
  timeoutMs?: number;
}

export interface Cluster {
  /** The cluster's name: "default" is shared by all test files; others are private. */
  name: string;
  /** Admin kubeconfig (client certificate in group system:masters). */
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Runs kubectl against this cluster and resolves with its stdout; rejects with its stderr. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<string>;
}

export interface ClusterOptions {
  /**
   * Cluster name, [a-z0-9-]. The default cluster is shared by every test file, so tests on it must
   * use their own namespaces and must not stop its apiserver; a test that causes outages uses a
   * name of its own and calls stopCluster() in afterAll.
   */
  name?: string;
}

// The script takes the cluster's name from its environment; env(1) sets it for that one command. A
// private cluster is owned by this process: a later `up` removes it if this process dies first.
async function clusterCommand(name: string, verb: string): Promise<string> {
  try {
    const env = [`CASTNET_K8S_NAME=${name}`, `CASTNET_K8S_OWNER=${process.pid}`];
    const { stdout } = await run('env', [...env, clusterScript, verb], {
      timeoutMs: 180_000,
    });
    return stdout;
  } catch (err) {
    throw new Error(`test cluster "${name}": ${verb} failed: ${errorMessage(err)}`, { cause: err });
  }
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** kubectl with an admin kubeconfig; rejects with its stderr. */
export function kubectlFor(kubeconfigPath: string) {
  return async (args: string[], opts: KubectlOptions = {}): Promise<string> => {
    const flags = ['--kubeconfig', kubeconfigPath];
    if (opts.as) flags.push(`--as=${opts.as}`);
    for (const g of opts.asGroups ?? []) flags.push(`--as-group=${g}`);
    const { stdout } = await run(kubectlPath, [...flags, ...args], {
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
    return stdout;
  };
}

/**
 * Starts the named cluster unless it is already serving, and waits for /readyz. Safe to call from
 * concurrent jest workers: the script serialises on a per-cluster lock and a running cluster is
 * reused. Throws with the remedy when the binaries are missing (`make upstream`).
 */
export async function ensureCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  // CASTNET_K8S_NAME picks another shared cluster: two checkouts sharing one .cache need their own.
  const name = opts.name ?? process.env.CASTNET_K8S_NAME ?? 'default';
  await clusterCommand(name, 'up');
  const env = parseEnv(await clusterCommand(name, 'env'));
  const kubeconfigPath = env.KUBECONFIG;
  const server = env.SERVER;
  if (!kubeconfigPath || !server) throw new Error(`test cluster "${name}": env printed no KUBECONFIG/SERVER`);
  return {
    name,
    kubeconfigPath,
    server,
    kubectl: kubectlFor(kubeconfigPath),
  };
}

/** The cluster's admin kubeconfig as client-node loads it; with `token`, that bearer token instead. */
export function clusterKubeConfig(cluster: Cluster, token?: string): KubeConfig {
  const kc = loadKubeConfig(cluster.kubeconfigPath);
  if (token === undefined) return kc;
  const server = kc.getCurrentCluster()!;
  kc.loadFromOptions({
    clusters: [server],
    users: [{ name: 'token', token }],
    contexts: [{ name: 'token', cluster: server.name, user: 'token' }],
    currentContext: 'token',
  });
  return kc;
}

/** Stops the cluster and deletes its data. Never on the shared default cluster from a test. */
export async function stopCluster(cluster: Cluster): Promise<void> {
  await clusterCommand(cluster.name, 'down');
}

/** Stops the apiserver (etcd keeps the data) to simulate an outage; startApiserver() ends it. */
export async function stopApiserver(cluster: Cluster): Promise<void> {
  await clusterCommand(cluster.name, 'stop-apiserver');
}

/** Starts the apiserver again on the same address with the same data and waits for /readyz. */
export async function startApiserver(cluster: Cluster): Promise<void> {
  await clusterCommand(cluster.name, 'start-apiserver');
}

/** Stops and starts the apiserver: watches break and clients must reconnect. */
export async function restartApiserver(cluster: Cluster): Promise<void> {
  await clusterCommand(cluster.name, 'restart-apiserver');
}

/** A fresh namespace named `<prefix>-<random>`, so test files can share the default cluster. */
export async function createNamespace(cluster: Cluster, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await cluster.kubectl(['create', 'namespace', name]);
  return name;
}

/**
 * A token for service account `namespace/serviceAccount` as an agent on `nodeName` gets it: a Node, a
 * pod of that account on it (no kubelet runs it), and a token bound to that pod, which carries the
 * node's name as the kubelet-projected one does (the admission policy compares it with the report's).
 */
export async function nodeBoundToken(
  cluster: Cluster,
  o: {
    namespace: string;
    serviceAccount: string;
    nodeName: string;
    podName: string;
    nodeLabels?: Record<string, string>;
  },
): Promise<string> {
  await cluster.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: o.nodeName, ...(o.nodeLabels ? { labels: o.nodeLabels } : {}) },
    }),
  });
  await cluster.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: o.podName, namespace: o.namespace },
      spec: {
        nodeName: o.nodeName,
        serviceAccountName: o.serviceAccount,
        containers: [{ name: 'agent', image: 'example.invalid/castnet' }],
      },
    }),
  });
  const token = await cluster.kubectl([
    ...['-n', o.namespace, 'create', 'token', o.serviceAccount],
    ...['--bound-object-kind=Pod', `--bound-object-name=${o.podName}`],
  ]);
  return token.trim();
}

/**
 * A kubeconfig that authenticates as service account `namespace/name` (created if missing) with a
 * token from the TokenRequest API, for running a real component under its RBAC role. Returns its path.
 */
export async function serviceAccountKubeconfig(
  cluster: Cluster,
  namespace: string,
  name: string,
  opts: { durationSeconds?: number } = {},
): Promise<string> {
  await cluster.kubectl(['-n', namespace, 'create', 'serviceaccount', name]).catch((err: Error) => {
    if (!/AlreadyExists|already exists/.test(err.message)) throw err;
  });
  const token = (
    await cluster.kubectl([
      '-n',
      namespace,
      'create',
      'token',
      name,
      `--duration=${opts.durationSeconds ?? 3600}s`,
    ])
  ).trim();
  const user = `system:serviceaccount:${namespace}:${name}`;
  const file = path.join(path.dirname(cluster.kubeconfigPath), `sa-${namespace}-${name}.kubeconfig`);
  const ca = path.join(path.dirname(cluster.kubeconfigPath), 'pki/ca.crt');
  const config = (args: string[]) => run(kubectlPath, ['config', '--kubeconfig', file, ...args]);
  await rm(file, { force: true });
  await config([
    'set-cluster',
    cluster.name,
    `--server=${cluster.server}`,
    `--certificate-authority=${ca}`,
    '--embed-certs',
  ]);
  await config(['set-credentials', user, `--token=${token}`]);
  await config([
    'set-context',
    user,
    `--cluster=${cluster.name}`,
    `--user=${user}`,
    `--namespace=${namespace}`,
  ]);
  await config(['use-context', user]);
  return file;
}
