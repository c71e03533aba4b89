// The declared groups of a directory, and their nesting edges as the agent sees them. The rule that
// judges those edges (cycles, depth) is in nesting.ts, shared with the controller.
import { canonicalAddress, isGroupAddress } from '../netaddr/address.js';
import type { GroupSpec } from '../lookup/port.js';
import { NestingGraph } from './nesting.js';

export { isGroupAddress } from '../netaddr/address.js';

/** "namespace/name" of a group, as status, events and error paths name it. */
export function groupName(g: GroupSpec): string {
  return `${g.namespace}/${g.name}`;
}

const addressKey = (network: string, address: string): string => `${network}|${address}`;

/** Lookup tables over declared groups, for the resolver. */
export class GroupTable {
  private readonly byKey = new Map<string, GroupSpec[]>();
  private readonly byName = new Map<string, GroupSpec>();
  private readonly edges = new Map<GroupSpec, string[]>();
  /** The nesting verdicts over this (immutable) table. */
  readonly nesting = new NestingGraph<GroupSpec>((g) => this.children(g));

  constructor(readonly groups: readonly GroupSpec[]) {
    for (const g of groups) {
      const key = addressKey(g.network, canonicalAddress(g.address));
      const list = this.byKey.get(key);
      if (list) list.push(g);
      else this.byKey.set(key, [g]);
      this.byName.set(groupName(g), g);
    }
  }

  /** Every declared group with this (network, canonical address); several namespaces may declare one. */
  byAddress(network: string, address: string): readonly GroupSpec[] {
    return this.byKey.get(addressKey(network, address)) ?? [];
  }

  byNamespacedName(namespace: string, name: string): GroupSpec | undefined {
    return this.byName.get(`${namespace}/${name}`);
  }

  /**
   * The namespace whose groups act at (network, canonical address), or undefined when none is
   * declared there. The table holds acting groups only (tenancy.ts), so they share one namespace.
   */
  ownerOf(network: string, address: string): string | undefined {
    return this.byAddress(network, address)[0]?.namespace;
  }

  /**
   * The canonical group addresses `g` pulls members from: its static members that are group
   * addresses, and the addresses of its nested groups (by name, same namespace and network; a
   * missing one is skipped). Traffic to an address reaches every group declared there, so an edge
   * leads to an address, not to one declaration. An address another namespace owns is skipped: a
   * group never pulls in, or loops through, another tenant's groups (tenancy.ts).
   */
  childAddresses(g: GroupSpec): readonly string[] {
    let out = this.edges.get(g);
    if (out) return out;
    const set = new Set<string>();
    for (const m of g.staticMembers) {
      const a = canonicalAddress(m);
      if (!isGroupAddress(a)) continue;
      const owner = this.ownerOf(g.network, a);
      if (owner === undefined || owner === g.namespace) set.add(a);
    }
    for (const n of g.nestedGroups) {
      const c = this.byNamespacedName(g.namespace, n);
      if (c && c.network === g.network) set.add(canonicalAddress(c.address));
    }
    this.edges.set(g, (out = [...set]));
    return out;
  }

  /** The declared groups at `g`'s child addresses: its edges in the nesting graph. */
  *children(g: GroupSpec): Iterable<GroupSpec> {
    for (const a of this.childAddresses(g)) yield* this.byAddress(g.network, a);
  }
}
