// Conversions between castnet's custom resources and the lookup port's records (pkg/lookup/port.ts),
// used by the agent's Kubernetes adapter and by the controller. Pure.
import type {
  EndpointRecord,
  GroupSpec,
  MembershipRecord,
  NetworkSpec,
  NodeRecord,
  SourceFilter,
} from '../port.js';
import type {
  MembershipReport,
  MembershipReportSpec,
  MulticastGroup,
  SourceFilterSpec,
  VirtualNetwork,
} from '../../k8s/types.js';

import { judgeGroups, type GroupClaim } from '../../resolve/tenancy.js';

export const DEFAULT_MTU = 1400;

export function toNetworkSpec(vn: VirtualNetwork): NetworkSpec {
  return {
    name: vn.metadata.name,
    id: vn.spec.networkID,
    subnets: [...vn.spec.subnets],
    mtu: vn.spec.mtu ?? DEFAULT_MTU,
    multicast: vn.spec.multicast?.enabled ?? true,
    broadcast: vn.spec.broadcast?.enabled ?? true,
    ...querierOf(vn),
    ...(vn.spec.broadcast?.arpProxy === false ? { arpProxy: false } : {}),
    ...(vn.spec.allowedNamespaces ? { allowedNamespaces: [...vn.spec.allowedNamespaces] } : {}),
    ...(vn.spec.rateLimits ? { rateLimits: vn.spec.rateLimits } : {}),
  };
}

function querierOf(vn: VirtualNetwork): Pick<NetworkSpec, 'querier'> {
  const m = vn.spec.multicast;
  const q: NonNullable<NetworkSpec['querier']> = {};
  if (m?.queryIntervalSeconds) q.queryIntervalSeconds = m.queryIntervalSeconds;
  if (m?.robustness) q.robustness = m.robustness;
  if (m?.maxGroupsPerEndpoint) q.maxGroupsPerEndpoint = m.maxGroupsPerEndpoint;
  return Object.keys(q).length ? { querier: q } : {};
}

export function toGroupSpec(g: MulticastGroup): GroupSpec {
  return {
    ...groupClaim(g),
    staticMembers: [...(g.spec.staticMembers ?? [])],
    nestedGroups: [...(g.spec.nestedGroups ?? [])],
    allowedSources: [...(g.spec.allowedSources ?? [])],
    ...(g.spec.allowedSenders?.length ? { allowedSenders: [...g.spec.allowedSenders] } : {}),
  };
}

/** What the tenancy rule reads of a MulticastGroup (pkg/resolve/tenancy.ts). */
export function groupClaim(g: MulticastGroup): GroupClaim {
  // client-node types creationTimestamp as a Date; a watched object carries the RFC 3339 string.
  const ts = g.metadata.creationTimestamp as Date | string | undefined;
  const ms = ts instanceof Date ? ts.getTime() : ts === undefined ? NaN : Date.parse(ts);
  return {
    namespace: g.metadata.namespace ?? 'default',
    name: g.metadata.name,
    network: g.spec.network,
    address: g.spec.address,
    ...(Number.isFinite(ms) ? { createdAt: ms } : {}),
  };
}

/** The groups the tenancy rule lets act: only their selectors select members. */
export function actingGroups(
  groups: readonly MulticastGroup[],
  networks: readonly VirtualNetwork[],
): MulticastGroup[] {
  const byName = new Map(networks.map((n) => [n.metadata.name, n]));
  const standing = judgeGroups(groups, groupClaim, (name) => {
    const vn = byName.get(name);
    return vn && { name, allowedNamespaces: vn.spec.allowedNamespaces };
  });
  return groups.filter((g) => standing.get(g)!.acts);
}

/** An absent filter is exclude {}: any source (IGMPv2/MLDv1 joins, static members). */
export const toSourceFilter = (f: SourceFilterSpec | undefined): SourceFilter =>
  f ? { mode: f.mode, sources: [...(f.sources ?? [])] } : { mode: 'exclude', sources: [] };

export const fromSourceFilter = (f: SourceFilter): SourceFilterSpec | undefined =>
  f.mode === 'exclude' && f.sources.length === 0 ? undefined : { mode: f.mode, sources: [...f.sources] };

export interface NodeDirectory {
  node: NodeRecord;
  endpoints: EndpointRecord[];
  memberships: MembershipRecord[];
}

/** Splits one node's report into the port's records. */
export function fromReport(r: MembershipReport): NodeDirectory {
  const node = r.spec.node;
  return {
    node: {
      name: node,
      address: r.spec.underlay.address,
      port: r.spec.underlay.port,
      poolIndex: r.spec.poolIndex ?? 0,
      ...(r.spec.underlay.wireVersion ? { wireVersion: r.spec.underlay.wireVersion } : {}),
      ...(r.spec.underlay.publicKey !== undefined && r.spec.underlay.keyEpoch !== undefined
        ? { wireKey: { epoch: r.spec.underlay.keyEpoch, publicKey: r.spec.underlay.publicKey } }
        : {}),
    },
    endpoints: (r.spec.endpoints ?? []).map((e) => ({
      network: e.network,
      node,
      endpointId: e.endpointID,
      mac: e.mac,
      ips: [...(e.ips ?? [])],
      ...(e.pod ? { pod: { ...e.pod } } : {}),
      ...(e.vm ? { vm: { ...e.vm } } : {}),
      ...(e.activatedAt ? { activatedAt: Date.parse(e.activatedAt) } : {}),
      ...(e.allowedAddresses?.length ? { allowedAddresses: [...e.allowedAddresses] } : {}),
      ...(e.claims?.length
        ? { claims: e.claims.map((c) => ({ address: c.address, at: Date.parse(c.at) })) }
        : {}),
    })),
    memberships: (r.spec.memberships ?? []).map((m) => ({
      network: m.network,
      group: m.group,
      node,
      endpointId: m.endpointID,
      filter: toSourceFilter(m.filter),
      ...(m.via ? { via: m.via } : {}),
    })),
  };
}

/** Builds a node's report spec from the port's records; records of other nodes are a caller bug. */
export function toReportSpec(d: NodeDirectory): MembershipReportSpec {
  const node = d.node.name;
  for (const r of [...d.endpoints, ...d.memberships]) {
    if (r.node !== node) throw new Error(`record of node "${r.node}" in the report of node "${node}"`);
  }
  return {
    node,
    underlay: {
      address: d.node.address,
      port: d.node.port,
      ...(d.node.wireVersion ? { wireVersion: d.node.wireVersion } : {}),
      ...(d.node.wireKey ? { publicKey: d.node.wireKey.publicKey, keyEpoch: d.node.wireKey.epoch } : {}),
    },
    poolIndex: d.node.poolIndex,
    endpoints: d.endpoints.map((e) => ({
      endpointID: e.endpointId,
      network: e.network,
      mac: e.mac,
      ips: [...e.ips],
      ...(e.pod ? { pod: { ...e.pod } } : {}),
      ...(e.vm ? { vm: { ...e.vm } } : {}),
      ...(e.activatedAt !== undefined ? { activatedAt: new Date(e.activatedAt).toISOString() } : {}),
      ...(e.allowedAddresses?.length ? { allowedAddresses: [...e.allowedAddresses] } : {}),
      ...(e.claims?.length
        ? { claims: e.claims.map((c) => ({ address: c.address, at: new Date(c.at).toISOString() })) }
        : {}),
    })),
    memberships: d.memberships.map((m) => {
      const filter = fromSourceFilter(m.filter);
      return {
        network: m.network,
        group: m.group,
        endpointID: m.endpointId,
        ...(filter ? { filter } : {}),
        ...(m.via ? { via: m.via } : {}),
      };
    }),
  };
}
