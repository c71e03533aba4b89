// The lab's lookup service behind one interface: the embedded one (a directory store served on a
// unix socket in the lab process) or a Kubernetes apiserver (kubernetes.ts). The rest of the lab
// never asks which one runs: it names nodes and networks, declares pods and groups, and reads the
// directory the agents see, through a LabLookup.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Disposable } from '../base/lifecycle.js';
import { EmbeddedLookupServer } from '../lookup/embedded/server.js';
import type { Directory, GroupSpec, NetworkSpec, PodMeta, VmiPods } from '../lookup/port.js';
import { DirectoryStore } from '../lookup/store.js';
import { KubernetesLabDirectory } from './kubernetes.js';
import type { LabTopology } from './topology.js';

export interface LabLookup extends Disposable {
  /** Declares the lab's networks and starts serving. */
  start(networks: NetworkSpec[]): Promise<void>;
  /** What the agents see now: networks, groups, node records, endpoints, memberships. */
  directory(): Directory;
  /** The namespace of the lab's pods and groups. */
  readonly namespace: string;
  /** Node `index`'s name (its agent's --node-name). */
  nodeName(index: number): string;
  /** The name the lab file's network `name` has in the lookup service. */
  networkName(name: string): string;
  /** The agent flags that make an agent use this lookup service. */
  agentArgs(): string[];
  /** Prepares node namespace `ns` before its first agent starts. */
  prepareNode(ns: string): void;
  /**
   * Declares a pod on `node` (its virt-launcher labels and annotations, if any) before its CNI ADD;
   * returns its UID.
   */
  addPod(name: string, node: string, meta?: PodMeta): Promise<string | undefined>;
  /** A VMI's status naming its pods (KubeVirt's controller's part), on node `node`. */
  setVmi(vmi: VmiPods, node: string): Promise<void>;
  setGroups(groups: GroupSpec[]): Promise<void>;
}

/** The embedded lookup service on `<lab dir>/lookup.sock`. */
export class EmbeddedLabLookup implements LabLookup {
  readonly namespace = 'lab';
  private readonly store = new DirectoryStore();
  private server?: EmbeddedLookupServer;

  constructor(private readonly topo: LabTopology) {}

  get socket(): string {
    return join(this.topo.dir, 'lookup.sock');
  }

  async start(networks: NetworkSpec[]): Promise<void> {
    this.store.setNetworks(networks);
    // What Node objects would say: each node's own address, the only one it may register.
    for (const n of this.topo.nodes) this.store.setNodeAddresses(n.name, [n.address]);
    this.server = new EmbeddedLookupServer(this.store, this.socket);
    await this.server.listen();
  }

  directory(): Directory {
    return this.store.snapshot();
  }

  nodeName(index: number): string {
    return this.topo.nodes[index]!.name;
  }

  networkName(name: string): string {
    return name;
  }

  agentArgs(): string[] {
    return ['--lookup', `unix:${this.socket}`];
  }

  prepareNode(): void {}

  async addPod(_name: string, _node: string, meta?: PodMeta): Promise<string | undefined> {
    // Only virt-launcher pods carry what the agent reads from a pod (the VM identity).
    if (!meta) return undefined;
    const uid = meta.uid ?? randomUUID();
    this.store.setPod({ ...meta, uid });
    return uid;
  }

  async setVmi(vmi: VmiPods): Promise<void> {
    this.store.setVmi(vmi);
  }

  async setGroups(groups: GroupSpec[]): Promise<void> {
    this.store.setGroups(groups);
  }

  async dispose(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.dispose();
  }
}

/** A cluster's apiserver (kubeconfig on loopback), through KubernetesLabDirectory. */
export class KubernetesLabLookup implements LabLookup {
  private cluster?: KubernetesLabDirectory;

  constructor(
    private readonly topo: LabTopology,
    private readonly kubeconfig: string,
    private readonly log: (line: string) => void,
  ) {}

  private get k8s(): KubernetesLabDirectory {
    if (!this.cluster) throw new Error('the Kubernetes lookup service is not started');
    return this.cluster;
  }

  async start(networks: NetworkSpec[]): Promise<void> {
    // Assigned before its start, so dispose() removes what a failed start created.
    this.cluster = new KubernetesLabDirectory(this.topo.id, this.topo.dir, this.kubeconfig);
    await this.cluster.start(networks);
    this.log(`lookup service: Kubernetes (${this.kubeconfig}), objects labelled ${this.cluster.selector}`);
  }

  get namespace(): string {
    return this.k8s.namespace;
  }

  directory(): Directory {
    return this.k8s.snapshot();
  }

  nodeName(index: number): string {
    return this.k8s.nodeName(index);
  }

  networkName(name: string): string {
    return this.k8s.networkName(name);
  }

  agentArgs(): string[] {
    return this.k8s.agentArgs();
  }

  prepareNode(ns: string): void {
    this.k8s.startNodeProxy(ns);
  }

  /** In Kubernetes the pod is an object too: the agent reads a virt-launcher's labels from it, and the controller counts the endpoint. */
  addPod(name: string, node: string, meta?: PodMeta): Promise<string | undefined> {
    return this.k8s.ensurePod(name, node, meta);
  }

  setVmi(vmi: VmiPods, node: string): Promise<void> {
    return this.k8s.setVmi(vmi, node);
  }

  async setGroups(groups: GroupSpec[]): Promise<void> {
    await this.k8s.setGroups(groups);
  }

  async dispose(): Promise<void> {
    const cluster = this.cluster;
    this.cluster = undefined;
    await cluster?.close(
      this.topo.nodes.map((n) => cluster.nodeName(n.index)),
      this.log,
    );
  }
}

/** The lookup service the options ask for: a cluster's with a kubeconfig, else the embedded one. */
export function labLookup(
  topo: LabTopology,
  kubeconfig: string | undefined,
  log: (line: string) => void,
): LabLookup {
  return kubeconfig ? new KubernetesLabLookup(topo, kubeconfig, log) : new EmbeddedLabLookup(topo);
}
