// The port between a node agent and the lookup service (README.md "Architecture"; how the agent
// resolves from the directory: docs/membership.md "Resolution"). Adapters: embedded (the lab, single
// process) and Kubernetes (CRDs). The packet path never calls these methods; it reads the local
// Directory cache that `subscribe` keeps current.

export interface NetworkSpec {
  /** VirtualNetwork name. */
  name: string;
  /** Network ID carried on the wire (24 bits, like a VNI). */
  id: number;
  /** IPv4 and/or IPv6 CIDRs. */
  subnets: string[];
  mtu: number;
  multicast: boolean;
  broadcast: boolean;
  /** IGMP/MLD querier settings for this network's links (absent: the agent's). */
  querier?: { queryIntervalSeconds?: number; robustness?: number; maxGroupsPerEndpoint?: number };
  /** Answer ARP for known endpoints from the directory (default true); false: ARP is broadcast. */
  arpProxy?: boolean;
  /**
   * Namespaces whose pods may attach and whose MulticastGroups act on this network; absent: every
   * namespace (pkg/resolve/tenancy.ts).
   */
  allowedNamespaces?: string[];
  /** Per-endpoint rate limits by kind of frame (absent: LIMITS' defaults, pkg/lookup/limits.ts). */
  rateLimits?: RateLimits;
}

/** A token bucket: `packetsPerSecond` sustained, `burst` at once. */
export interface Rate {
  packetsPerSecond: number;
  burst: number;
}

export type RateLimits = { [K in 'broadcast' | 'arp' | 'multicast']?: Partial<Rate> };

export interface NodeRecord {
  name: string;
  /** Underlay address the agent's UDP data plane listens on. */
  address: string;
  port: number;
  /** Index of this node's IPAM block within each network's subnets. */
  poolIndex: number;
  /** The highest wire format version the node's agent speaks (absent: 1). */
  wireVersion?: number;
  /** The node's current X25519 public key for wire format version 2 (docs/wire-format.md "Keys"). */
  wireKey?: WireKeyRecord;
}

export interface WireKeyRecord {
  /** Names this generation of the node's key pair in datagram headers; grows with every rotation. */
  epoch: number;
  /** Base64 of the raw 32-byte X25519 public key. */
  publicKey: string;
}

export interface PodMeta {
  namespace: string;
  name: string;
  uid?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface PodRef {
  namespace: string;
  name: string;
  uid?: string;
}

/**
 * What KubeVirt's VirtualMachineInstance status says about its pods: `status.activePods` (pod UID ->
 * node) and `status.migrationState.targetPod` (a pod name). Only a pod named here is the VM.
 */
export interface VmiPods {
  namespace: string;
  name: string;
  /** Pod UIDs of status.activePods. */
  activePodUids: string[];
  /** status.migrationState.targetPod, while a migration runs. */
  migrationTargetPod?: string;
  /**
   * What the VM's address reservations belong to, so that they go when it goes: the VirtualMachine
   * that owns the VMI (a restart replaces the VMI, not the VM), else the VMI itself. Absent: unknown.
   */
  owner?: VmOwner;
}

/** A Kubernetes object a VM's address reservation is owned by (its ownerReference). */
export interface VmOwner {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/**
 * The addresses a VM holds on one network, kept for its identity (namespace and VMI name) across
 * restarts, rescheduling and live migration until the VM is deleted (docs/kubevirt.md "Addresses").
 * Kubernetes: a VMAddress in the VM's namespace, owned by the VM (docs/api.md).
 */
export interface AddressReservation {
  network: string;
  vm: VmRef;
  /** Plain, canonical addresses, one per subnet of the network. */
  ips: string[];
  /** When it was made (ms since the epoch): of two reservations of one address, the older holds it. */
  createdAt?: number;
  /** UID of the owner it was made for; another UID means the VM was deleted and made again. */
  ownerUid?: string;
}

/** KubeVirt VM identity: stable across live migration, unlike the pod. */
export interface VmRef {
  namespace: string;
  name: string;
}

export interface EndpointRecord {
  network: string;
  node: string;
  /** Unique within `node`; allocated and published by that node's agent. */
  endpointId: number;
  mac: string;
  /** Plain addresses (no prefix). */
  ips: string[];
  pod?: PodRef;
  vm?: VmRef;
  /**
   * When the endpoint became active (ms since the epoch): a VM's only endpoint at once, a migration
   * target when it announced itself (RARP, gratuitous ARP, unsolicited NA). Of the endpoints of one
   * VM during a live migration, the most recently activated one is the VM (pkg/resolve/vm-handoff.ts).
   */
  activatedAt?: number;
  /**
   * Addresses beyond `ips` the endpoint may send from (allowed address pairs, declared by the user,
   * e.g. a VRRP virtual IP shared by several endpoints). Plain, canonical addresses.
   */
  allowedAddresses?: string[];
  /** Which of its allowed addresses the endpoint announced (gratuitous ARP), and when. */
  claims?: AddressClaim[];
}

/** An endpoint announced that it now holds `address` (ms since the epoch): the newest claim wins. */
export interface AddressClaim {
  address: string;
  at: number;
}

export type JoinVia = 'igmp' | 'mld' | 'static' | 'selector' | 'nested';

export interface SourceFilter {
  mode: 'include' | 'exclude';
  sources: string[];
}

/** One endpoint's membership of one group, as its node agent observed it. */
export interface MembershipRecord {
  network: string;
  group: string;
  node: string;
  endpointId: number;
  filter: SourceFilter;
  /**
   * Absent: an IGMP/MLD join the agent's querier heard. `selector`: a MulticastGroup's label selector
   * selects the endpoint (the agent of its node evaluates the selectors, see docs/membership.md).
   */
  via?: 'selector';
}

export interface GroupSpec {
  namespace: string;
  name: string;
  network: string;
  /** Multicast IP or MAC. */
  address: string;
  /** Endpoint addresses (IP or MAC) or other group addresses: nested groups resolve recursively. */
  staticMembers: string[];
  /** Other MulticastGroups by name (same namespace), whose members are members here. */
  nestedGroups: string[];
  /** SSM: only these sources may be received by members (empty = any). */
  allowedSources: string[];
  /** Only endpoints with an address in these IPs or CIDRs may send to the group (absent or empty: any). */
  allowedSenders?: string[];
  /** Creation time (ms since the epoch): of groups of several namespaces at one address, the oldest's namespace owns it. */
  createdAt?: number;
}

export interface Directory {
  networks: NetworkSpec[];
  nodes: NodeRecord[];
  endpoints: EndpointRecord[];
  groups: GroupSpec[];
  memberships: MembershipRecord[];
  /** Every VM's address reservations (absent: the lookup service keeps none). */
  reservations?: AddressReservation[];
}

export type UnderlayPeerStatus = 'unknown' | 'up' | 'down' | 'mtu-blackhole';

/** One peer as a node's underlay health probes see it (docs/underlay-health.md). */
export interface UnderlayPeerHealth {
  node: string;
  status: UnderlayPeerStatus;
  /** Smoothed round-trip time (ms) when the report was made, once a probe was answered. */
  rttMs?: number;
  /** When the status last changed (RFC 3339). */
  since: string;
}

/** A node's view of its underlay paths, and the UnderlayHealthy condition summing it up. */
export interface UnderlayHealthReport {
  node: string;
  /** UDP payload of the full-size probes: the underlay MTU less the IP and UDP headers. */
  probeBytes: number;
  condition: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string };
  peers: UnderlayPeerHealth[];
}

export interface LookupService {
  /** Replaces this node's published endpoints with `endpoints` (idempotent). */
  publishEndpoints(node: string, endpoints: EndpointRecord[]): Promise<void>;
  /** Replaces this node's membership report with `memberships` (idempotent). */
  reportMemberships(node: string, memberships: MembershipRecord[]): Promise<void>;
  /** Replaces this node's underlay health report (a status, not part of the Directory). */
  reportUnderlayHealth?(report: UnderlayHealthReport): Promise<void>;
  /** Registers this node (underlay address, port). */
  registerNode(node: NodeRecord): Promise<void>;
  /**
   * Labels and annotations of a pod (KubeVirt identity of virt-launcher pods), when the lookup
   * service knows pods; called once per CNI ADD, never on the packet path.
   */
  podMetadata?(namespace: string, name: string): Promise<PodMeta | undefined>;
  /**
   * A VMI's pods as its status names them (undefined: no such VMI); absent when the service knows no
   * VMIs. Called at a CNI ADD of a pod with virt-launcher labels, never on the packet path.
   */
  vmiPods?(namespace: string, name: string): Promise<VmiPods | undefined>;
  /**
   * `vm`'s address reservation on `network`, read from the service itself (not the directory, which
   * may lag: the VM may have been restarted on another node a moment ago). Absent: no reservations.
   */
  addressReservation?(vm: VmRef, network: string): Promise<AddressReservation | undefined>;
  /**
   * Reserves `r.ips` for `r.vm` on `r.network` unless the VM has a reservation there already, and
   * resolves with the one that holds: creation is atomic, so of two nodes reserving at once both get
   * the first one's. `replace` overwrites an existing reservation instead (the VM now holds other
   * addresses). `owner`: what the reservation goes with (Kubernetes: its ownerReference).
   * Undefined: the service keeps no reservations (Kubernetes: the VMAddress CRD is not installed).
   */
  reserveAddresses?(
    r: AddressReservation,
    opts?: { owner?: VmOwner; replace?: boolean },
  ): Promise<AddressReservation | undefined>;
  /** The service's own counters (writes, entries it had to leave out), for the agent's stats. */
  readonly stats?: Record<string, unknown>;
  /** Calls `onChange` with the whole directory now and after every change. Returns an unsubscribe. */
  subscribe(onChange: (d: Directory) => void): () => void;
  dispose(): Promise<void>;
}
