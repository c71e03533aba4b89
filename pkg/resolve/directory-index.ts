// An immutable index over one Directory snapshot, built once per directory change. The per-packet
// path only reads it. Every address is keyed in canonical form and every key includes the network,
// so two tenants with overlapping subnets and the same group never share an entry.
import { canonicalAddress, parseCidr, subnetBroadcast, type Cidr } from '../frame/addr';
import type { Directory, EndpointRecord, MembershipRecord, NetworkSpec, NodeRecord } from '../lookup/port';
import { GroupTable } from './groups';

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

export class DirectoryIndex {
  readonly networks = new Map<string, IndexedNetwork>();
  readonly networksById = new Map<number, IndexedNetwork>();
  readonly nodes = new Map<string, NodeRecord>();
  readonly endpoints: IndexedEndpoint[] = [];
  readonly groups: GroupTable;
  readonly problems: IndexProblem[] = [];
  private readonly byAddress = new Map<string, IndexedEndpoint>();
  private readonly byNodeId = new Map<string, IndexedEndpoint>();
  private readonly localById = new Map<number, IndexedEndpoint>();
  private readonly memberships = new Map<string, IndexedMembership[]>();

  constructor(
    readonly directory: Directory,
    readonly localNode: string,
  ) {
    for (const n of directory.nodes) this.nodes.set(n.name, n);
    for (const spec of directory.networks) this.addNetwork(spec);
    for (const e of directory.endpoints) this.addEndpoint(e);
    for (const m of directory.memberships) this.addMembership(m);
    this.groups = new GroupTable(directory.groups);
  }

  private addNetwork(spec: NetworkSpec): void {
    if (this.networks.has(spec.name) || this.networksById.has(spec.id)) {
      this.problems.push({ record: `network ${spec.name}`, reason: `duplicate name or ID ${spec.id}` });
      return;
    }
    const subnets: Cidr[] = [];
    const broadcasts = new Set<string>();
    for (const s of spec.subnets) {
      const c = parseCidr(s);
      if (!c) {
        this.problems.push({
          record: `network ${spec.name}`,
          reason: `subnet ${JSON.stringify(s)} is not a CIDR`,
        });
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
    const label = `endpoint ${r.node}/${r.endpointId}`;
    const net = this.networks.get(r.network);
    if (!net)
      return void this.problems.push({
        record: label,
        reason: `unknown network ${JSON.stringify(r.network)}`,
      });
    const nodeKey = `${r.node}/${r.endpointId}`;
    if (this.byNodeId.has(nodeKey))
      return void this.problems.push({ record: label, reason: 'duplicate endpoint ID on its node' });
    const mac = canonicalAddress(r.mac);
    const ips = r.ips.map(canonicalAddress);
    const taken = [mac, ...ips].find((a) => this.byAddress.has(`${r.network}|${a}`));
    if (taken)
      return void this.problems.push({
        record: label,
        reason: `address ${taken} already belongs to another endpoint of ${r.network}`,
      });
    const e: IndexedEndpoint = {
      record: r,
      network: net,
      node: r.node,
      endpointId: r.endpointId,
      mac,
      ips,
      ordinal: this.endpoints.length,
    };
    this.endpoints.push(e);
    (net.endpoints as IndexedEndpoint[]).push(e);
    this.byNodeId.set(nodeKey, e);
    for (const a of [mac, ...ips]) this.byAddress.set(`${r.network}|${a}`, e);
    if (r.node === this.localNode) this.localById.set(r.endpointId, e);
  }

  private addMembership(m: MembershipRecord): void {
    const e = this.byNodeId.get(`${m.node}/${m.endpointId}`);
    if (!e || e.network.spec.name !== m.network) {
      this.problems.push({
        record: `membership ${m.node}/${m.endpointId} in ${m.group}`,
        reason: 'no such endpoint in that network',
      });
      return;
    }
    const key = `${m.network}|${canonicalAddress(m.group)}`;
    const entry: IndexedMembership = {
      endpoint: e,
      include: m.filter.mode === 'include',
      sources: new Set(m.filter.sources.map(canonicalAddress)),
    };
    const list = this.memberships.get(key);
    if (list) list.push(entry);
    else this.memberships.set(key, [entry]);
  }

  /** The endpoint that owns a canonical IP or MAC within a network. */
  endpointByAddress(network: string, address: string): IndexedEndpoint | undefined {
    return this.byAddress.get(`${network}|${address}`);
  }

  /** A local endpoint by its ID (IDs are unique within a node, across networks). */
  localEndpoint(endpointId: number): IndexedEndpoint | undefined {
    return this.localById.get(endpointId);
  }

  endpointOn(node: string, endpointId: number): IndexedEndpoint | undefined {
    return this.byNodeId.get(`${node}/${endpointId}`);
  }

  /** IGMP/MLD (and controller-resolved) memberships of a (network, canonical group). */
  membershipsOf(network: string, group: string): readonly IndexedMembership[] {
    return this.memberships.get(`${network}|${group}`) ?? [];
  }
}

export function buildIndex(directory: Directory, localNode: string): DirectoryIndex {
  return new DirectoryIndex(directory, localNode);
}
