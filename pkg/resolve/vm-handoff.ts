// Live migration of a KubeVirt VM: for a while two virt-launcher pods (source and target, on
// different nodes) hold endpoints with the VM's identity, MAC and IPs. Exactly one of them is the
// VM: the one that most recently became active (a VM's first endpoint when it is created; a
// migration target when it announces itself, QEMU's RARP after the switch-over). The others are left out of the directory, so the source stops
// receiving once the target is active, and their memberships move to the live endpoint, so the VM
// keeps its groups without waiting for the next query.
import type { Directory, EndpointRecord, MembershipRecord } from '../lookup/port.js';

const vmKey = (e: EndpointRecord) => (e.vm ? `${e.network}|${e.vm.namespace}/${e.vm.name}` : undefined);
const epKey = (node: string, id: number) => `${node}/${id}`;

function newer(a: EndpointRecord, b: EndpointRecord): EndpointRecord {
  const ta = a.activatedAt ?? 0;
  const tb = b.activatedAt ?? 0;
  if (ta !== tb) return ta > tb ? a : b;
  // Neither is active yet (or both at once): any stable choice will do until one is.
  return epKey(a.node, a.endpointId) <= epKey(b.node, b.endpointId) ? a : b;
}

export interface VmHandoffOptions {
  /**
   * Move a superseded endpoint's memberships to the live one (default). Off, the live endpoint has
   * only the groups its guest itself reports from there (by IGMP/MLD): the comparison case of
   * `make bench-migration`.
   */
  moveMemberships?: boolean;
}

export function applyVmHandoff(d: Directory, o: VmHandoffOptions = {}): Directory {
  const live = new Map<string, EndpointRecord>();
  for (const e of d.endpoints) {
    const k = vmKey(e);
    if (!k) continue;
    const cur = live.get(k);
    live.set(k, cur ? newer(cur, e) : e);
  }
  // superseded endpoint (node/id) -> the live endpoint of its VM
  const moved = new Map<string, EndpointRecord>();
  for (const e of d.endpoints) {
    const k = vmKey(e);
    const l = k ? live.get(k) : undefined;
    if (l && l !== e) moved.set(epKey(e.node, e.endpointId), l);
  }
  if (moved.size === 0) return d;
  const endpoints = d.endpoints.filter((e) => !moved.has(epKey(e.node, e.endpointId)));
  if (o.moveMemberships === false)
    return {
      ...d,
      endpoints,
      memberships: d.memberships.filter((m) => !moved.has(epKey(m.node, m.endpointId))),
    };
  const seen = new Set<string>();
  const memberships: MembershipRecord[] = [];
  // The live endpoint's own memberships first: they win over moved ones for the same group.
  const ordered = [
    ...d.memberships.filter((m) => !moved.has(epKey(m.node, m.endpointId))),
    ...d.memberships.filter((m) => moved.has(epKey(m.node, m.endpointId))),
  ];
  for (const m of ordered) {
    const to = moved.get(epKey(m.node, m.endpointId));
    const r = to ? { ...m, node: to.node, endpointId: to.endpointId } : m;
    const k = `${r.network}|${r.group}|${r.node}/${r.endpointId}`;
    if (seen.has(k)) continue;
    seen.add(k);
    memberships.push(r);
  }
  return { ...d, endpoints, memberships };
}
