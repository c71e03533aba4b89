// The lab's Kubernetes mode (`castnet lab run --lookup kubernetes`): the lab's networks and groups
// become VirtualNetworks and MulticastGroups on a real apiserver, agents use the Kubernetes lookup
// adapter, and the lab watches the reports through the same adapter. Everything is named after the
// lab's ID and labelled with it, so several labs can share a cluster: VirtualNetwork `<id>-<name>`,
// MulticastGroups in namespace `<id>`, nodes (and their reports) `<id>-node-<i>`. Agents run in node
// namespaces, which cannot reach the host's loopback: each node gets a socat listening on the
// apiserver's loopback address inside it, relayed through a unix socket to the real apiserver, so
// the kubeconfig (and its TLS names) work unchanged.
import type { ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { errorMessage } from '../base/errors.js';
import { apiCall, isNotFound } from '../k8s/api-error.js';
import { loadKubeConfig, serverOf } from '../k8s/config.js';
import { crd, SERVER_SIDE_APPLY, VMI } from '../k8s/resources.js';
import { API_VERSION, KINDS } from '../k8s/types.js';
import { KubernetesLookup } from '../lookup/kubernetes/lookup.js';
import type { Directory, GroupSpec, NetworkSpec, VmiPods } from '../lookup/port.js';
import { spawnIn, stop } from '../sys/exec.js';

export const LAB_LABEL = 'castnet.io/lab';

const EMPTY: Directory = { networks: [], nodes: [], endpoints: [], groups: [], memberships: [] };
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export class KubernetesLabDirectory {
  private readonly server: URL;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly view: KubernetesLookup;
  private relay?: Server;
  private readonly proxies: ChildProcess[] = [];
  private readonly networks: string[] = [];

  constructor(
    private readonly labId: string,
    private readonly labDir: string,
    private readonly kubeconfig: string,
  ) {
    const kc = loadKubeConfig(kubeconfig);
    this.server = serverOf(kc);
    if (!LOOPBACK.has(this.server.hostname))
      throw new Error(
        `--kubeconfig ${kubeconfig}: the lab reaches the apiserver from its node namespaces through loopback only; server ${this.server.host} is not on loopback`,
      );
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.view = new KubernetesLookup({ kubeConfig: kc, selector: this.selector });
  }

  get selector(): string {
    return `${LAB_LABEL}=${this.labId}`;
  }

  /** The namespace of the lab's MulticastGroups. */
  get namespace(): string {
    return this.labId;
  }

  networkName(name: string): string {
    return `${this.labId}-${name}`;
  }

  nodeName(index: number): string {
    return `${this.labId}-node-${index}`;
  }

  /** What the agents' adapters see: the lab's networks and groups and every node's report. */
  snapshot(): Directory {
    return this.view.directory ?? EMPTY;
  }

  /** The agent flags that make it use this cluster. */
  agentArgs(): string[] {
    return ['--lookup', 'kubernetes', '--kubeconfig', this.kubeconfig, '--network-selector', this.selector];
  }

  private get relaySocket(): string {
    return join(this.labDir, 'apiserver.sock');
  }

  async start(networks: NetworkSpec[]): Promise<void> {
    const labels = { [LAB_LABEL]: this.labId };
    await apiCall(`create namespace ${this.namespace}`, () =>
      this.core.createNamespace({ body: { metadata: { name: this.namespace, labels } } }),
    );
    for (const n of networks) {
      const name = this.networkName(n.name);
      await apiCall(`create VirtualNetwork ${name}`, () =>
        this.custom.createClusterCustomObject({
          ...crd('virtualNetwork'),
          body: {
            apiVersion: API_VERSION,
            kind: KINDS.virtualNetwork.kind,
            metadata: { name, labels },
            spec: {
              networkID: n.id,
              subnets: n.subnets,
              mtu: n.mtu,
              multicast: { enabled: n.multicast },
              broadcast: { enabled: n.broadcast },
              ...(n.allowedNamespaces ? { allowedNamespaces: n.allowedNamespaces } : {}),
            },
          },
        }),
      );
      this.networks.push(name);
    }
    const port = Number(this.server.port || 443);
    this.relay = createServer((client) => {
      const upstream = createConnection({ host: this.server.hostname.replace(/^\[|\]$/g, ''), port });
      client.pipe(upstream).pipe(client);
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
    });
    await new Promise<void>((resolve, reject) => {
      this.relay!.once('error', reject);
      this.relay!.listen(this.relaySocket, resolve);
    });
    await this.view.start();
  }

  /** Starts the apiserver relay inside node namespace `ns` (the agent retries until it listens). */
  startNodeProxy(ns: string): void {
    const host = this.server.hostname;
    const port = this.server.port || '443';
    const listen = host === '[::1]' ? `TCP6-LISTEN:${port},bind=[::1]` : `TCP4-LISTEN:${port},bind=127.0.0.1`;
    this.proxies.push(
      spawnIn(ns, 'socat', [`${listen},fork,reuseaddr`, `UNIX-CONNECT:${this.relaySocket}`], {
        stdio: 'ignore',
      }),
    );
  }

  async setGroups(groups: GroupSpec[]): Promise<void> {
    for (const g of groups) {
      await apiCall(`create MulticastGroup ${this.namespace}/${g.name}`, () =>
        this.custom.createNamespacedCustomObject({
          ...crd('multicastGroup'),
          namespace: this.namespace,
          body: {
            apiVersion: API_VERSION,
            kind: KINDS.multicastGroup.kind,
            metadata: { name: g.name, namespace: this.namespace, labels: { [LAB_LABEL]: this.labId } },
            spec: {
              network: g.network,
              address: g.address,
              ...(g.staticMembers.length ? { staticMembers: g.staticMembers } : {}),
              ...(g.nestedGroups.length ? { nestedGroups: g.nestedGroups } : {}),
              ...(g.allowedSources.length ? { allowedSources: g.allowedSources } : {}),
              ...(g.allowedSenders?.length ? { allowedSenders: g.allowedSenders } : {}),
            },
          },
        }),
      );
    }
  }

  /** A Pod object for a lab pod (no kubelet runs it), so the controller sees the endpoint's pod. */
  async ensurePod(
    name: string,
    node: string,
    meta?: { labels: Record<string, string>; annotations: Record<string, string> },
  ): Promise<string | undefined> {
    const pod = await apiCall(`create pod ${this.namespace}/${name}`, () =>
      this.core.createNamespacedPod({
        namespace: this.namespace,
        body: {
          metadata: {
            name,
            namespace: this.namespace,
            labels: { ...meta?.labels, [LAB_LABEL]: this.labId },
            annotations: { ...meta?.annotations },
          },
          spec: { nodeName: node, containers: [{ name: 'lab', image: 'castnet.invalid/lab-pod' }] },
        },
      }),
    );
    return pod.metadata?.uid;
  }

  /**
   * A VirtualMachineInstance whose status names its pods, as KubeVirt's controller writes it (needs
   * KubeVirt's CRD; no KubeVirt runs here). Replaced whole: the lab is its only writer.
   */
  async setVmi(vmi: VmiPods, node: string): Promise<void> {
    const body = {
      apiVersion: `${VMI.group}/${VMI.version}`,
      kind: 'VirtualMachineInstance',
      metadata: { name: vmi.name, namespace: vmi.namespace, labels: { [LAB_LABEL]: this.labId } },
      spec: {},
      status: {
        activePods: Object.fromEntries(vmi.activePodUids.map((uid) => [uid, node])),
        ...(vmi.migrationTargetPod ? { migrationState: { targetPod: vmi.migrationTargetPod } } : {}),
      },
    };
    await apiCall(`apply VMI ${vmi.namespace}/${vmi.name}`, () =>
      this.custom.patchNamespacedCustomObject(
        { ...VMI, namespace: vmi.namespace, name: vmi.name, body, fieldManager: 'castnet-lab', force: true },
        SERVER_SIDE_APPLY,
      ),
    );
  }

  /** Removes what the lab created: groups, networks, the nodes' reports, then the namespace. */
  async close(nodes: string[], log: (line: string) => void): Promise<void> {
    await this.view.dispose();
    for (const p of this.proxies) await stop(p);
    await new Promise<void>((resolve) => (this.relay ? this.relay.close(() => resolve()) : resolve()));
    const remove = async (what: string, request: () => Promise<unknown>): Promise<void> => {
      try {
        await apiCall(`delete ${what}`, request);
      } catch (err) {
        if (!isNotFound(err)) log(`cleanup: ${errorMessage(err)}`);
      }
    };
    const namespace = this.namespace;
    const labelSelector = this.selector;
    await remove(`the MulticastGroups in namespace ${namespace}`, () =>
      this.custom.deleteCollectionNamespacedCustomObject({
        ...crd('multicastGroup'),
        namespace,
        labelSelector,
      }),
    );
    // No kubelet will confirm a graceful deletion: remove the pods at once.
    await remove(`the pods in namespace ${namespace}`, () =>
      this.core.deleteCollectionNamespacedPod({ namespace, labelSelector, gracePeriodSeconds: 0 }),
    );
    for (const name of this.networks)
      await remove(`VirtualNetwork ${name}`, () =>
        this.custom.deleteClusterCustomObject({ ...crd('virtualNetwork'), name }),
      );
    for (const name of nodes)
      await remove(`MembershipReport ${name}`, () =>
        this.custom.deleteClusterCustomObject({ ...crd('membershipReport'), name }),
      );
    await remove(`namespace ${namespace}`, () => this.core.deleteNamespace({ name: namespace }));
  }
}
