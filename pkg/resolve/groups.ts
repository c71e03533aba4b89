// Declared group graph checks (DESIGN.md: cycles and excessive depth are rejected when a group is
// declared and again when it is resolved). Pure: the controller uses validateGroups on admission,
// the resolver uses the same edge definition at packet time.
import { canonicalAddress, isGroupAddress, parseAddress } from '../frame/addr.js';
import type { GroupSpec } from '../lookup/port.js';

export { isGroupAddress } from '../frame/addr.js';

/** Nesting levels below a group; a deeper chain is rejected. */
export const MAX_GROUP_DEPTH = 8;

export type GroupProblemCode = 'cycle' | 'too-deep' | 'unknown-nested-group' | 'bad-address' | 'bad-member';

export interface GroupProblem {
  /** "namespace/name" of the group the problem was found in. */
  group: string;
  code: GroupProblemCode;
  message: string;
  /** For cycles and depth: the chain of groups, as "namespace/name". */
  path?: string[];
}

export function groupKey(network: string, address: string): string {
  return `${network}|${address}`;
}

export function groupName(g: GroupSpec): string {
  return `${g.namespace}/${g.name}`;
}

/** Lookup tables over declared groups, shared by validation and the resolver. */
export class GroupTable {
  private readonly byKey = new Map<string, GroupSpec[]>();
  private readonly byName = new Map<string, GroupSpec>();

  constructor(readonly groups: readonly GroupSpec[]) {
    for (const g of groups) {
      const key = groupKey(g.network, canonicalAddress(g.address));
      const list = this.byKey.get(key);
      if (list) list.push(g);
      else this.byKey.set(key, [g]);
      this.byName.set(groupName(g), g);
    }
  }

  /** Every declared group with this (network, canonical address); several namespaces may declare one. */
  byAddress(network: string, address: string): readonly GroupSpec[] {
    return this.byKey.get(groupKey(network, address)) ?? [];
  }

  byNamespacedName(namespace: string, name: string): GroupSpec | undefined {
    return this.byName.get(`${namespace}/${name}`);
  }

  /** The groups `g` pulls members from: nested groups by name, and static members that are declared group addresses. */
  children(g: GroupSpec): { found: GroupSpec[]; missing: string[] } {
    const found: GroupSpec[] = [];
    const missing: string[] = [];
    for (const n of g.nestedGroups) {
      const c = this.byNamespacedName(g.namespace, n);
      if (c) found.push(c);
      else missing.push(n);
    }
    for (const m of g.staticMembers) {
      if (isGroupAddress(m)) found.push(...this.byAddress(g.network, canonicalAddress(m)));
    }
    return { found, missing };
  }
}

/**
 * Validates declared groups: addresses, nested names, cycles (with the path) and depth > MAX_GROUP_DEPTH.
 * Returns every problem found; an empty list means the declarations are sound.
 */
export function validateGroups(groups: readonly GroupSpec[]): GroupProblem[] {
  const table = new GroupTable(groups);
  const problems: GroupProblem[] = [];
  for (const g of groups) {
    const name = groupName(g);
    if (!isGroupAddress(g.address)) {
      problems.push({
        group: name,
        code: 'bad-address',
        message: `address ${JSON.stringify(g.address)} is not a multicast IP or group MAC`,
      });
    }
    for (const m of g.staticMembers) {
      if (!parseAddress(m))
        problems.push({
          group: name,
          code: 'bad-member',
          message: `static member ${JSON.stringify(m)} is not an IP or MAC address`,
        });
    }
    for (const n of table.children(g).missing) {
      problems.push({
        group: name,
        code: 'unknown-nested-group',
        message: `nested group ${JSON.stringify(n)} does not exist in namespace ${g.namespace}`,
      });
    }
  }
  // One depth-first pass with memoised heights: linear in the graph, even for wide diamonds.
  const height = new Map<GroupSpec, number>();
  const deepest = new Map<GroupSpec, GroupSpec | undefined>();
  const stack: GroupSpec[] = [];
  const onCycle = new Set<GroupSpec>();
  const visit = (g: GroupSpec): number => {
    const known = height.get(g);
    if (known !== undefined) return known;
    const at = stack.indexOf(g);
    if (at >= 0) {
      const names = [...stack.slice(at), g].map(groupName);
      problems.push({
        group: groupName(stack[stack.length - 1]),
        code: 'cycle',
        message: `nesting cycle: ${names.join(' -> ')}`,
        path: names,
      });
      stack.slice(at).forEach((x) => onCycle.add(x));
      return Infinity;
    }
    stack.push(g);
    let h = 0;
    let via: GroupSpec | undefined;
    for (const c of table.children(g).found) {
      const ch = visit(c) + 1;
      if (ch > h) {
        h = ch;
        via = c;
      }
    }
    stack.pop();
    height.set(g, h);
    deepest.set(g, via);
    return h;
  };
  for (const g of groups) visit(g);
  for (const g of groups) {
    const h = height.get(g) ?? 0;
    if (h === Infinity || h <= MAX_GROUP_DEPTH || onCycle.has(g)) continue;
    const path: string[] = [];
    for (let x: GroupSpec | undefined = g; x; x = deepest.get(x)) path.push(groupName(x));
    problems.push({
      group: groupName(g),
      code: 'too-deep',
      message: `nesting ${h} levels deep (max ${MAX_GROUP_DEPTH}): ${path.join(' -> ')}`,
      path,
    });
  }
  return problems;
}
