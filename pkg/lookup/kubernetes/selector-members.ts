// The selector members an agent reports for its node: each local endpoint whose pod (or KubeVirt VMI)
// a MulticastGroup's label selectors select becomes a membership of the group's address, marked via
// selector. Reported like IGMP joins, so every agent's directory delivers to them (docs/lookup-kubernetes.md,
// "Selector members"). The selection rule itself is pkg/k8s/selector.ts, shared with the controller.
// Pure.
import { canonicalAddress, isSsmGroup } from '../../netaddr/address.js';
import { groupSelects, hasSelectors } from '../../k8s/selector.js';
import type { LabeledObject, MulticastGroup } from '../../k8s/types.js';
import type { EndpointRecord, MembershipRecord, SourceFilter } from '../port.js';

/** The pods and VMIs of this node the selectors are evaluated against, by namespace and name. */
export interface SelectableObjects {
  pod(namespace: string, name: string): LabeledObject | undefined;
  vmi(namespace: string, name: string): LabeledObject | undefined;
}

const ANY: SourceFilter = { mode: 'exclude', sources: [] };

/**
 * A selected endpoint receives from any source, like a static member, within the group's
 * allowedSources. An SSM address delivers to INCLUDE memberships only (RFC 4607), so there the
 * member's filter is the allowed sources themselves.
 */
function filterOf(g: MulticastGroup, address: string): SourceFilter {
  const allowed = g.spec.allowedSources ?? [];
  return isSsmGroup(address) ? { mode: 'include', sources: allowed.map(canonicalAddress) } : ANY;
}

/** Whether `o` is the live object of the endpoint's reference (a reused name is another pod). */
const sameObject = (o: LabeledObject | undefined, uid: string | undefined): o is LabeledObject =>
  o !== undefined && (!uid || !o.uid || o.uid === uid);

/**
 * The memberships of `node`'s endpoints that `groups`' selectors select, one per (network, group
 * address, endpoint) however many groups select it, in a stable order.
 */
export function selectorMemberships(
  node: string,
  groups: readonly MulticastGroup[],
  endpoints: readonly EndpointRecord[],
  objects: SelectableObjects,
): MembershipRecord[] {
  const out = new Map<string, MembershipRecord>();
  const selecting = groups.filter(hasSelectors);
  if (selecting.length === 0) return [];
  for (const ep of endpoints) {
    if (ep.node !== node) continue;
    const pod = ep.pod && objects.pod(ep.pod.namespace, ep.pod.name);
    const vmi = ep.vm && objects.vmi(ep.vm.namespace, ep.vm.name);
    const podLive = sameObject(pod, ep.pod?.uid);
    for (const g of selecting) {
      if (g.spec.network !== ep.network) continue;
      const selected =
        (podLive && groupSelects(g, 'pods', pod)) || (vmi !== undefined && groupSelects(g, 'vmis', vmi));
      if (!selected) continue;
      const group = canonicalAddress(g.spec.address);
      const key = `${ep.network}|${group}|${ep.endpointId}`;
      if (out.has(key)) continue;
      out.set(key, {
        network: ep.network,
        group,
        node,
        endpointId: ep.endpointId,
        filter: filterOf(g, group),
        via: 'selector',
      });
    }
  }
  return [...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, m]) => m);
}
