// An immutable index over one Directory snapshot, built once per directory change. The per-packet
// path only reads it. Every address is keyed in canonical form and every key includes the network,
// so two tenants with overlapping subnets and the same group never share an entry.
import { errorMessage } from '../base/errors.js';
import { canonicalAddress } from '../netaddr/address.js';
import { parseCidr, subnetBroadcast, type Cidr } from '../netaddr/ip.js';
import type {
  Directory,
  EndpointRecord,
  GroupSpec,
  MembershipRecord,
  NetworkSpec,
  NodeRecord,
} from '../lookup/port.js';
import { addressHolders } from './address-pairs.js';
import { GroupTable } from './groups.js';
import { judgeGroups } from './tenancy.js';

export interface IndexedNetwork {
  readonly spec: NetworkSpec;
  readonly subnets: readonly Cidr[];
  /** IPv4 directed broadcast addresses of the network's subnets. */
  readonly subnetBroadcasts: ReadonlySet<string>;
  readonly endpoints: readonly IndexedEndpoint[];
}

export interface IndexedEndpoint {
  readonly record: EndpointRecord;
  readonly network: IndexedNetwork;
  readonly node: string;
  readonly endpointId: number;
  /** Canonical MAC and IPs. */
  readonly mac: string;
  readonly ips: readonly string[];
  /** Allowed address pairs: addresses beyond `ips` it may send from (canonical). */
  readonly allowedAddresses: ReadonlySet<string>;
  /** Position in DirectoryIndex.endpoints: a dense key for de-duplication. */
  readonly ordinal: number;
}

export interface IndexedMembership {
  readonly endpoint: IndexedEndpoint;
  readonly include: boolean;
  readonly sources: ReadonlySet<string>;
}

/** Inconsistencies met while indexing; the offending records are left out, never half-indexed. */
export interface IndexProblem {
  record: string;
  reason: string;
}

const NO_SOURCES: ReadonlySet<string> = new Set();
const NO_ADDRESSES: ReadonlySet<string> = new Set();
const NO_MEMBERSHIPS: readonly IndexedMembership[] = [];

export class DirectoryIndex {
  readonly networks = new Map<string, IndexedNetwork>();
  readonly networksById = new Map<number, IndexedNetwork>();
  readonly nodes = new Map<string, NodeRecord>();
  readonly endpoints: IndexedEndpoint[] = [];
  readonly groups: GroupTable;
  readonly problems: IndexProblem[] = [];
  // Nested maps (network -> address -> ...) rather than joined string keys: no string is built per
  // lookup on the packet path, and far less garbage per rebuild.
  private readonly byAddress = new Map<string, Map<string, IndexedEndpoint>>();
  private readonly byNodeId = new Map<string, Map<number, IndexedEndpoint>>();
  private readonly localById = new Map<number, IndexedEndpoint>();
  private readonly memberships = new Map<string, Map<string, IndexedMembership[]>>();

  constructor(
    readonly directory: Directory,
    readonly localNode: string,
  ) {
    for (const n of directory.nodes) this.nodes.set(n.name, n);
    for (const spec of directory.networks) this.addNetwork(spec);
    for (const e of directory.endpoints) this.addEndpoint(e);
    this.addHeldAddresses(directory.endpoints);
    for (const m of directory.memberships) this.addMembership(m);
    this.groups = new GroupTable(this.actingGroups(directory.groups));
  }

  /** The groups the tenancy rule lets act (tenancy.ts); the others are problems, never resolved. */
  private actingGroups(groups: readonly GroupSpec[]): GroupSpec[] {
    const standing = judgeGroups(
      groups,
      (g) => g,
      (n) => this.networks.get(n)?.spec,
    );
    return groups.filter((g) => {
      const s = standing.get(g)!;
      if (!s.acts) this.problem(`group ${g.namespace}/${g.name}`, `${s.reason}: ${s.message}`);
      return s.acts;
    });
  }

  private addNetwork(spec: NetworkSpec): void {
    if (this.networks.has(spec.name) || this.networksById.has(spec.id)) {
      this.problems.push({ record: `network ${spec.name}`, reason: `duplicate name or ID ${spec.id}` });
      return;
    }
    const subnets: Cidr[] = [];
    const broadcasts = new Set<string>();
    for (const s of spec.subnets) {
      let c: Cidr;
      try {
        c = parseCidr(s);
      } catch (e) {
        this.problems.push({ record: `network ${spec.name}`, reason: `subnet ${errorMessage(e)}` });
        continue;
      }
      subnets.push(c);
      const b = subnetBroadcast(c);
      if (b) broadcasts.add(b);
    }
    const net: IndexedNetwork = { spec, subnets, subnetBroadcasts: broadcasts, endpoints: [] };
    this.networks.set(spec.name, net);
    this.networksById.set(spec.id, net);
  }

  private addEndpoint(r: EndpointRecord): void {
    const net = this.networks.get(r.network);
    if (!net)
      return this.problem(
        `endpoint ${r.node}/${r.endpointId}`,
        `unknown network ${JSON.stringify(r.network)}`,
      );
    let onNode = this.byNodeId.get(r.node);
    if (onNode?.has(r.endpointId))
      return this.problem(`endpoint ${r.node}/${r.endpointId}`, 'duplicate endpoint ID on its node');
    let addresses = this.byAddress.get(r.network);
    if (!addresses) this.byAddress.set(r.network, (addresses = new Map()));
    const mac = canonicalAddress(r.mac);
    const ips = r.ips.map(canonicalAddress);
    const taken = addresses.has(mac) ? mac : ips.find((a) => addresses.has(a));
    if (taken) {
      return this.problem(
        `endpoint ${r.node}/${r.endpointId}`,
        `address ${taken} already belongs to another endpoint of ${r.network}`,
      );
    }
    const e: IndexedEndpoint = {
      record: r,
      network: net,
      node: r.node,
      endpointId: r.endpointId,
      mac,
      ips,
      allowedAddresses: r.allowedAddresses?.length
        ? new Set(r.allowedAddresses.map(canonicalAddress))
        : NO_ADDRESSES,
      ordinal: this.endpoints.length,
    };
    this.endpoints.push(e);
    (net.endpoints as IndexedEndpoint[]).push(e);
    if (!onNode) this.byNodeId.set(r.node, (onNode = new Map()));
    onNode.set(r.endpointId, e);
    addresses.set(mac, e);
    for (const a of ips) addresses.set(a, e);
    if (r.node === this.localNode) this.localById.set(r.endpointId, e);
  }

  /**
   * A shared (allowed) address resolves to the endpoint that announced it last. An endpoint's own
   * address is never taken over: the pair widens what an endpoint may use, not what it may steal.
   */
  private addHeldAddresses(records: readonly EndpointRecord[]): void {
    for (const [network, held] of addressHolders(records)) {
      const addresses = this.byAddress.get(network);
      if (!addresses) continue;
      for (const [address, r] of held) {
        const a = canonicalAddress(address);
        const e = this.endpointOn(r.node, r.endpointId);
        if (!e || e.record !== r) continue;
        const owner = addresses.get(a);
        if (owner && owner.ips.includes(a)) {
          this.problem(`endpoint ${r.node}/${r.endpointId}`, `claims ${a}, the address of another endpoint`);
          continue;
        }
        addresses.set(a, e);
      }
    }
  }

  private problem(record: string, reason: string): void {
    this.problems.push({ record, reason });
  }

  private addMembership(m: MembershipRecord): void {
    const e = this.endpointOn(m.node, m.endpointId);
    if (!e || e.network.spec.name !== m.network) {
      return this.problem(
        `membership ${m.node}/${m.endpointId} in ${m.group}`,
        'no such endpoint in that network',
      );
    }
    let groups = this.memberships.get(m.network);
    if (!groups) this.memberships.set(m.network, (groups = new Map()));
    const group = canonicalAddress(m.group);
    const sources =
      m.filter.sources.length === 0 ? NO_SOURCES : new Set(m.filter.sources.map(canonicalAddress));
    const entry: IndexedMembership = { endpoint: e, include: m.filter.mode === 'include', sources };
    const list = groups.get(group);
    if (list) list.push(entry);
    else groups.set(group, [entry]);
  }

  /** The endpoint that owns a canonical IP or MAC within a network. */
  endpointByAddress(network: string, address: string): IndexedEndpoint | undefined {
    return this.byAddress.get(network)?.get(address);
  }

  /** A local endpoint by its ID (IDs are unique within a node, across networks). */
  localEndpoint(endpointId: number): IndexedEndpoint | undefined {
    return this.localById.get(endpointId);
  }

  endpointOn(node: string, endpointId: number): IndexedEndpoint | undefined {
    return this.byNodeId.get(node)?.get(endpointId);
  }

  /** IGMP/MLD (and controller-resolved) memberships of a (network, canonical group). */
  membershipsOf(network: string, group: string): readonly IndexedMembership[] {
    return this.memberships.get(network)?.get(group) ?? NO_MEMBERSHIPS;
  }
}

export function buildIndex(directory: Directory, localNode: string): DirectoryIndex {
  return new DirectoryIndex(directory, localNode);
}

/** Whether the index already places `address` on `e` (a repeated announcement needs no new claim). */
export function holds(index: DirectoryIndex, e: IndexedEndpoint, address: string): boolean {
  return index.endpointByAddress(e.network.spec.name, address) === e;
}
