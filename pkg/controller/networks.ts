// VirtualNetwork status: usage counts, and a Ready condition that catches what one object's CEL rules
// cannot: two networks with the same networkID.
import type { MembershipReport, MulticastGroup, VirtualNetwork, VirtualNetworkStatus } from '../k8s/types';
import { applyConditions } from './conditions';

export function desiredNetworkStatuses(
  networks: VirtualNetwork[],
  groups: MulticastGroup[],
  reports: MembershipReport[],
  now: string,
): Map<string, VirtualNetworkStatus> {
  const byId = new Map<number, string[]>();
  for (const n of networks)
    byId.set(n.spec.networkID, [...(byId.get(n.spec.networkID) ?? []), n.metadata.name]);
  const endpoints = new Map<string, number>();
  for (const r of reports) {
    for (const e of r.spec.endpoints ?? []) endpoints.set(e.network, (endpoints.get(e.network) ?? 0) + 1);
  }
  const groupCount = new Map<string, number>();
  for (const g of groups) groupCount.set(g.spec.network, (groupCount.get(g.spec.network) ?? 0) + 1);

  const out = new Map<string, VirtualNetworkStatus>();
  for (const n of networks) {
    const name = n.metadata.name;
    const others = (byId.get(n.spec.networkID) ?? []).filter((x) => x !== name).sort();
    const gen = n.metadata.generation;
    const ready = others.length
      ? {
          type: 'Ready',
          status: 'False' as const,
          reason: 'NetworkIDConflict',
          message: `spec.networkID ${n.spec.networkID} is also used by VirtualNetwork ${others.map((o) => `"${o}"`).join(', ')}`,
        }
      : {
          type: 'Ready',
          status: 'True' as const,
          reason: 'Valid',
          message: `network ID ${n.spec.networkID} is unique`,
        };
    out.set(name, {
      ...(gen !== undefined ? { observedGeneration: gen } : {}),
      endpoints: endpoints.get(name) ?? 0,
      groups: groupCount.get(name) ?? 0,
      conditions: applyConditions(
        n.status?.conditions,
        [{ ...ready, ...(gen !== undefined ? { observedGeneration: gen } : {}) }],
        now,
      ),
    });
  }
  return out;
}
