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
import { ApiClient, isNotFound, resourcePath } from '../k8s/client.js';
import { loadConnection, type Connection } from '../k8s/kubeconfig.js';
import { API_VERSION, KINDS } from '../k8s/types.js';
import { KubernetesLookup } from '../lookup/kubernetes/lookup.js';
import type { Directory, GroupSpec, NetworkSpec } from '../lookup/port.js';
import { spawnIn, stop } from '../sys/exec.js';
import { errorMessage } from '../base/errors.js';

export const LAB_LABEL = 'castnet.io/lab';

const EMPTY: Directory = { networks: [], nodes: [], endpoints: [], groups: [], memberships: [] };
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export class KubernetesLabDirectory {
  private readonly conn: Connection;
  private readonly api: ApiClient;
  private readonly view: KubernetesLookup;
  private relay?: Server;
  private readonly proxies: ChildProcess[] = [];
  private readonly networks: string[] = [];

  constructor(
    private readonly labId: string,
    private readonly labDir: string,
    private readonly kubeconfig: string,
  ) {
    this.conn = loadConnection(kubeconfig);
    if (!LOOPBACK.has(this.conn.server.hostname))
      throw new Error(
        `--kubeconfig ${kubeconfig}: the lab reaches the apiserver from its node namespaces through loopback only; server ${this.conn.server.host} is not on loopback`,
      );
    this.api = new ApiClient(this.conn);
    this.view = new KubernetesLookup({ connection: this.conn, selector: this.selector });
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
    await this.api.create('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: this.namespace, labels },
    });
    for (const n of networks) {
      const name = this.networkName(n.name);
      await this.api.create(resourcePath(API_VERSION, KINDS.virtualNetwork.plural), {
        apiVersion: API_VERSION,
        kind: KINDS.virtualNetwork.kind,
        metadata: { name, labels },
        spec: {
          networkID: n.id,
          subnets: n.subnets,
          mtu: n.mtu,
          multicast: { enabled: n.multicast },
          broadcast: { enabled: n.broadcast },
        },
      });
      this.networks.push(name);
    }
    const port = Number(this.conn.server.port || 443);
    this.relay = createServer((client) => {
      const upstream = createConnection({ host: this.conn.server.hostname.replace(/^\[|\]$/g, ''), port });
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
    await this.view.ready;
  }

  /** Starts the apiserver relay inside node namespace `ns` (the agent retries until it listens). */
  startNodeProxy(ns: string): void {
    const host = this.conn.server.hostname;
    const port = this.conn.server.port || '443';
    const listen = host === '[::1]' ? `TCP6-LISTEN:${port},bind=[::1]` : `TCP4-LISTEN:${port},bind=127.0.0.1`;
    this.proxies.push(
      spawnIn(ns, 'socat', [`${listen},fork,reuseaddr`, `UNIX-CONNECT:${this.relaySocket}`], {
        stdio: 'ignore',
      }),
    );
  }

  async setGroups(groups: GroupSpec[]): Promise<void> {
    for (const g of groups) {
      await this.api.create(
        resourcePath(API_VERSION, KINDS.multicastGroup.plural, { namespace: this.namespace }),
        {
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
      );
    }
  }

  /** A Pod object for a lab pod (no kubelet runs it), so the controller sees the endpoint's pod. */
  async ensurePod(
    name: string,
    node: string,
    meta?: { labels: Record<string, string>; annotations: Record<string, string> },
  ): Promise<void> {
    await this.api.create(`/api/v1/namespaces/${this.namespace}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: this.namespace,
        labels: { ...meta?.labels, [LAB_LABEL]: this.labId },
        annotations: { ...meta?.annotations },
      },
      spec: { nodeName: node, containers: [{ name: 'lab', image: 'castnet.invalid/lab-pod' }] },
    });
  }

  /** Removes what the lab created: groups, networks, the nodes' reports, then the namespace. */
  async close(nodes: string[], log: (line: string) => void): Promise<void> {
    await this.view.close();
    for (const p of this.proxies) await stop(p);
    await new Promise<void>((resolve) => (this.relay ? this.relay.close(() => resolve()) : resolve()));
    const remove = async (path: string): Promise<void> => {
      try {
        await this.api.delete(path);
      } catch (err) {
        if (!isNotFound(err)) log(`cleanup: ${errorMessage(err)}`);
      }
    };
    const groups = resourcePath(API_VERSION, KINDS.multicastGroup.plural, { namespace: this.namespace });
    const selector = `?labelSelector=${encodeURIComponent(this.selector)}`;
    await remove(`${groups}${selector}`);
    // No kubelet will confirm a graceful deletion: remove the pods at once.
    await remove(`/api/v1/namespaces/${this.namespace}/pods${selector}&gracePeriodSeconds=0`);
    for (const n of this.networks)
      await remove(resourcePath(API_VERSION, KINDS.virtualNetwork.plural, { name: n }));
    for (const n of nodes)
      await remove(resourcePath(API_VERSION, KINDS.membershipReport.plural, { name: n }));
    await remove(`/api/v1/namespaces/${this.namespace}`);
    this.api.close();
  }
}
