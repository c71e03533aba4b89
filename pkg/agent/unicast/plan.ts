// Cross-node unicast: which MAC lives behind which node, per network. Pure, so the diff the agent
// applies to the kernel's VXLAN and bridge forwarding tables is unit-tested on its own.
import type { Directory } from '../../lookup/port.js';

/** network name -> (endpoint MAC -> underlay address of the node hosting it), remote endpoints only. */
export type RemoteMacs = Map<string, Map<string, string>>;

export function remoteMacs(d: Directory, localNode: string): RemoteMacs {
  const address = new Map(d.nodes.map((n) => [n.name, n.address]));
  const out: RemoteMacs = new Map(d.networks.map((n) => [n.name, new Map<string, string>()]));
  for (const e of d.endpoints) {
    if (e.node === localNode) continue;
    const at = address.get(e.node);
    const macs = out.get(e.network);
    if (at && macs) macs.set(e.mac.toLowerCase(), at);
  }
  return out;
}

export interface FdbChange {
  network: string;
  mac: string;
  /** Absent: remove the entry. */
  address?: string;
}

/** The entries to add, move or remove to turn `applied` into `desired`. */
export function diffRemoteMacs(applied: RemoteMacs, desired: RemoteMacs): FdbChange[] {
  const changes: FdbChange[] = [];
  for (const [network, want] of desired) {
    const have = applied.get(network) ?? new Map<string, string>();
    for (const [mac, address] of want) if (have.get(mac) !== address) changes.push({ network, mac, address });
    for (const mac of have.keys()) if (!want.has(mac)) changes.push({ network, mac });
  }
  for (const [network, have] of applied) {
    if (desired.has(network)) continue;
    for (const mac of have.keys()) changes.push({ network, mac });
  }
  return changes;
}
