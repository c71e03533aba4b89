// Typed models of castnet's custom resources (castnet.io/v1alpha1). The CRDs under charts/castnet/crds/
// are the schema of record; these types mirror them field for field (docs/api.md).
import { LIMITS } from '../lookup/limits.js';
import type { RateLimits } from '../lookup/port.js';

export const GROUP = 'castnet.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const KINDS = {
  virtualNetwork: { kind: 'VirtualNetwork', plural: 'virtualnetworks', namespaced: false },
  multicastGroup: { kind: 'MulticastGroup', plural: 'multicastgroups', namespaced: true },
  membershipReport: { kind: 'MembershipReport', plural: 'membershipreports', namespaced: false },
  vmAddress: { kind: 'VMAddress', plural: 'vmaddresses', namespaced: true },
} as const;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** client-node's type says Date; a watched object carries the RFC 3339 string (see creationTime). */
  creationTimestamp?: Date;
}

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface VirtualNetworkSpec {
  networkID: number;
  subnets: string[];
  mtu?: number;
  multicast?: {
    enabled?: boolean;
    queryIntervalSeconds?: number;
    robustness?: number;
    maxGroupsPerEndpoint?: number;
  };
  broadcast?: { enabled?: boolean; arpProxy?: boolean };
  /** Namespaces whose pods may attach and whose groups act (unset: all); pkg/resolve/tenancy.ts. */
  allowedNamespaces?: string[];
  rateLimits?: RateLimits;
}

export interface VirtualNetworkStatus {
  observedGeneration?: number;
  endpoints?: number;
  groups?: number;
  conditions?: Condition[];
}

export interface VirtualNetwork {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: VirtualNetworkSpec;
  status?: VirtualNetworkStatus;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface MulticastGroupSpec {
  network: string;
  address: string;
  staticMembers?: string[];
  nestedGroups?: string[];
  selectors?: { pods?: LabelSelector; vmis?: LabelSelector };
  allowedSources?: string[];
  allowedSenders?: string[];
}

export type Via = 'igmp' | 'mld' | 'static' | 'selector' | 'nested';

export interface SourceFilterSpec {
  mode: 'include' | 'exclude';
  sources?: string[];
}

/** One resolved member in a MulticastGroup's status. */
export interface GroupMember {
  /** The endpoint's first IP, or its MAC when it has none. */
  endpoint: string;
  endpointID?: number;
  mac?: string;
  node?: string;
  /** namespace/name */
  pod?: string;
  /** namespace/name of the KubeVirt VMI */
  vm?: string;
  via: Via;
  /** For via=nested: the group (namespace/name) in which the endpoint is a direct member. */
  group?: string;
  /** Absent means any source. */
  filter?: SourceFilterSpec;
}

export interface GroupCounts {
  members: number;
  nodes: number;
  igmp: number;
  mld: number;
  static: number;
  selector: number;
  nested: number;
  unresolved: number;
}

export interface MulticastGroupStatus {
  observedGeneration?: number;
  members?: GroupMember[];
  counts?: GroupCounts;
  conditions?: Condition[];
}

export interface MulticastGroup {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: MulticastGroupSpec;
  status?: MulticastGroupStatus;
}

export interface ReportEndpoint {
  endpointID: number;
  network: string;
  mac: string;
  ips?: string[];
  pod?: { namespace: string; name: string; uid?: string };
  vm?: { namespace: string; name: string };
  /** When the endpoint became active (RFC 3339 with milliseconds): live-migration handoff. */
  activatedAt?: string;
  /** Allowed address pairs: addresses beyond `ips` the endpoint may use (a VRRP virtual IP). */
  allowedAddresses?: string[];
  /** Allowed addresses the endpoint announced (gratuitous ARP), with when (RFC 3339, ms). */
  claims?: { address: string; at: string }[];
}

export interface ReportMembership {
  network: string;
  group: string;
  endpointID: number;
  /** Absent means exclude {} (any source). */
  filter?: SourceFilterSpec;
  /** Absent: an IGMP/MLD join. `selector`: a MulticastGroup's label selector selects the endpoint. */
  via?: 'selector';
}

export interface MembershipReportSpec {
  node: string;
  underlay: {
    address: string;
    port: number;
    /** The highest wire format version the agent speaks (absent: 1). */
    wireVersion?: number;
    /** The agent's X25519 public key (base64) for wire format version 2, and its epoch. */
    publicKey?: string;
    keyEpoch?: number;
  };
  poolIndex?: number;
  endpoints?: ReportEndpoint[];
  memberships?: ReportMembership[];
}

/** Written by the node's agent: what its spec had to leave out (condition Truncated). */
export interface MembershipReportStatus {
  leftOut?: { endpoints?: number; memberships?: number };
  conditions?: Condition[];
}

/** One per node, named after it, written only by that node's agent. */
export interface MembershipReport {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: MembershipReportSpec;
  status?: MembershipReportStatus;
}

/** metav1.OwnerReference. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface VMAddressSpec {
  /** The VirtualNetwork; immutable. */
  network: string;
  /** The VirtualMachineInstance's name (its namespace is the object's); immutable. */
  vmi: string;
  /** The VM's addresses on the network, plain, one per subnet. */
  ips: string[];
}

/**
 * A VM's addresses on one network, reserved for it until it is deleted: in the VM's namespace, named
 * vmAddressName(vmi, network), owned by the VirtualMachine (else the VMI). Written by the agents.
 */
export interface VMAddress {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta & { ownerReferences?: OwnerReference[] };
  spec: VMAddressSpec;
}

/** What the controller needs of a Pod (or a KubeVirt VMI): identity and labels. */
export interface LabeledObject {
  namespace: string;
  name: string;
  uid?: string;
  labels: Record<string, string>;
}

/** What the controller needs of a Node: whether it exists and is Ready, and since when. */
export interface NodeState {
  name: string;
  ready: boolean;
  /** When the Ready condition last changed (RFC 3339), if known. */
  since?: string;
}

export const MAX_STATUS_MEMBERS = LIMITS.statusMembers;
