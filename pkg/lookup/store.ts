// The directory as one mutable store with per-writer replacement semantics: each node owns its
// endpoints and memberships, the operator (lab scenario or CRs) owns networks and groups.
import type {
  AddressReservation,
  Directory,
  EndpointRecord,
  GroupSpec,
  MembershipRecord,
  NetworkSpec,
  NodeRecord,
  PodMeta,
  UnderlayHealthReport,
  VmiPods,
  VmOwner,
  VmRef,
} from './port.js';
import { canonicalAddress } from '../netaddr/address.js';
import { z } from 'zod';
import { describeZodError, groupSpec, networkSpec } from './schema.js';

/** Validates what the operator declares, so the embedded service refuses what the CRDs would. */
function valid<T>(schema: z.ZodType<T>, items: T[], what: string): T[] {
  const r = z.array(schema).safeParse(items);
  if (!r.success) throw new Error(`invalid ${what}: ${describeZodError(r.error)}`);
  return items;
}

const reservationKey = (vm: VmRef, network: string): string => `${vm.namespace}/${vm.name}/${network}`;

export class DirectoryStore {
  private networks = new Map<string, NetworkSpec>();
  private nodes = new Map<string, NodeRecord>();
  private endpoints = new Map<string, EndpointRecord[]>();
  private memberships = new Map<string, MembershipRecord[]>();
  private groups = new Map<string, GroupSpec>();
  private pods = new Map<string, PodMeta>();
  private vmis = new Map<string, VmiPods>();
  /** VM address reservations by namespace/VMI/network: they go when the VM is deleted (deleteVm). */
  private reservations = new Map<string, AddressReservation>();
  /** Each node's own underlay addresses (what a Kubernetes Node's status.addresses says), when declared. */
  private nodeAddresses = new Map<string, Set<string>>();
  /** Node registrations refused because their address was not the node's own. */
  refusedRegistrations = 0;
  /** Each node's underlay health: a status beside the directory, never pushed to the agents. */
  private health = new Map<string, UnderlayHealthReport>();
  private listeners = new Set<(d: Directory, version: number) => void>();
  private version = 0;
  private cached: Directory | undefined;

  snapshot(): Directory {
    this.cached ??= {
      networks: [...this.networks.values()],
      nodes: [...this.nodes.values()],
      endpoints: [...this.endpoints.values()].flat(),
      groups: [...this.groups.values()],
      memberships: [...this.memberships.values()].flat(),
      reservations: [...this.reservations.values()],
    };
    return this.cached;
  }

  get currentVersion(): number {
    return this.version;
  }

  setNetworks(networks: NetworkSpec[]): void {
    this.networks = new Map(valid(networkSpec, networks, 'networks').map((n) => [n.name, n]));
    this.changed();
  }

  setGroups(groups: GroupSpec[]): void {
    this.groups = new Map(valid(groupSpec, groups, 'groups').map((g) => [`${g.namespace}/${g.name}`, g]));
    this.changed();
  }

  /** Pods are not part of the directory: agents ask for one at CNI ADD. */
  setPod(pod: PodMeta): void {
    this.pods.set(`${pod.namespace}/${pod.name}`, pod);
  }

  pod(namespace: string, name: string): PodMeta | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }

  /** A VMI's status, as KubeVirt's controller would write it. Not part of the directory. */
  setVmi(vmi: VmiPods): void {
    this.vmis.set(`${vmi.namespace}/${vmi.name}`, vmi);
  }

  vmi(namespace: string, name: string): VmiPods | undefined {
    return this.vmis.get(`${namespace}/${name}`);
  }

  addressReservation(vm: VmRef, network: string): AddressReservation | undefined {
    return this.reservations.get(reservationKey(vm, network));
  }

  /**
   * Reserves `r.ips` for its VM on its network unless it holds a reservation there (then that one is
   * returned), or replaces it (`replace`). Atomic: the service handles one request at a time.
   */
  reserveAddresses(
    r: AddressReservation,
    opts: { owner?: VmOwner; replace?: boolean } = {},
  ): AddressReservation {
    const key = reservationKey(r.vm, r.network);
    const existing = this.reservations.get(key);
    if (existing && !opts.replace) return existing;
    const stored: AddressReservation = {
      network: r.network,
      vm: { namespace: r.vm.namespace, name: r.vm.name },
      ips: r.ips.map(canonicalAddress),
      createdAt: existing?.createdAt ?? Date.now(),
      ...(opts.owner ? { ownerUid: opts.owner.uid } : {}),
    };
    this.reservations.set(key, stored);
    this.changed();
    return stored;
  }

  /** The VM is deleted: its VMI goes, and its address reservations are released. */
  deleteVm(namespace: string, name: string): void {
    this.vmis.delete(`${namespace}/${name}`);
    let released = false;
    for (const [key, r] of this.reservations) {
      if (r.vm.namespace === namespace && r.vm.name === name) released = this.reservations.delete(key);
    }
    if (released) this.changed();
  }

  /**
   * Declares node `name`'s own addresses (a Node object's status.addresses): from then on only a
   * registration with one of them is accepted, so one node cannot point the others at a host that
   * is not its own.
   */
  setNodeAddresses(name: string, addresses: string[]): void {
    this.nodeAddresses.set(name, new Set(addresses));
  }

  registerNode(node: NodeRecord): void {
    const own = this.nodeAddresses.get(node.name);
    if (own && !own.has(node.address)) {
      this.refusedRegistrations++;
      throw new Error(
        `address: ${node.address} is not an address of node ${node.name} (${[...own].join(', ')})`,
      );
    }
    this.nodes.set(node.name, node);
    this.changed();
  }

  removeNode(name: string): void {
    this.nodes.delete(name);
    this.endpoints.delete(name);
    this.memberships.delete(name);
    this.health.delete(name);
    this.changed();
  }

  reportUnderlayHealth(report: UnderlayHealthReport): void {
    this.health.set(report.node, report);
  }

  /** Every node's last underlay health report, by node name. */
  underlayHealth(): UnderlayHealthReport[] {
    return [...this.health.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  publishEndpoints(node: string, endpoints: EndpointRecord[]): void {
    for (const e of endpoints) {
      if (e.node !== node)
        throw new Error(`endpoint ${e.endpointId}: node ${e.node} may not be published by ${node}`);
    }
    this.endpoints.set(node, endpoints);
    this.changed();
  }

  reportMemberships(node: string, memberships: MembershipRecord[]): void {
    for (const m of memberships) {
      if (m.node !== node)
        throw new Error(`membership of ${m.group}: node ${m.node} may not be reported by ${node}`);
    }
    this.memberships.set(node, memberships);
    this.changed();
  }

  subscribe(fn: (d: Directory, version: number) => void): () => void {
    this.listeners.add(fn);
    fn(this.snapshot(), this.version);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    this.version++;
    this.cached = undefined;
    const d = this.snapshot();
    for (const fn of this.listeners) fn(d, this.version);
  }
}
