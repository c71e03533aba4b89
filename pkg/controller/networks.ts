// VirtualNetwork status: usage counts, and a Ready condition that catches what one object's CEL rules
// cannot: two networks with the same networkID.
import type { VirtualNetwork, VirtualNetworkStatus } from '../k8s/types.js';
import { applyConditions } from '../k8s/conditions.js';

export function desiredNetworkStatuses(
  networks: readonly VirtualNetwork[],
  groupsOn: (network: string) => number,
  endpointsOn: (network: string) => number,
  now: string,
): Map<string, VirtualNetworkStatus> {
  const byId = new Map<number, string[]>();
  for (const n of networks)
    byId.set(n.spec.networkID, [...(byId.get(n.spec.networkID) ?? []), n.metadata.name]);
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
      endpoints: endpointsOn(name),
      groups: groupsOn(name),
      conditions: applyConditions(
        n.status?.conditions,
        [{ ...ready, ...(gen !== undefined ? { observedGeneration: gen } : {}) }],
        now,
      ),
    });
  }
  return out;
}
