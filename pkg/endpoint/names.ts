// Deterministic names of the links castnet creates in the node's namespace.
import { createHash } from 'node:crypto';

/** Host-side veth of attachment (containerId, ifname): "cn" + 11 hex digits, within IFNAMSIZ. */
export function hostIfname(containerId: string, ifname: string): string {
  return 'cn' + createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11);
}

/** Whether `name` looks like a host-side veth castnet made (reconcile removes unowned ones). */
export const isHostIfname = (name: string): boolean => /^cn[0-9a-f]{11}$/.test(name);

/** The node-local bridge of network `id` (24 bits): "cnbr" + 6 hex digits. */
export const bridgeName = (networkId: number): string => 'cnbr' + networkId.toString(16).padStart(6, '0');
