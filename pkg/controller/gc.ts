// Which nodes' reports count, and which reports to delete. A node that is NotReady longer than the grace
// period stops contributing members; a Node deleted longer than the grace period loses its report too.
import type { NodeState } from '../k8s/types.js';

export interface NodeVerdict {
  /** Nodes whose endpoints and joins count. */
  live: Set<string>;
  /** Reports to delete: their Node has been gone longer than the grace period. */
  collect: string[];
  /** When each reporting node was first seen without a Node object (carry into the next call). */
  missingSince: Map<string, number>;
}

export function judgeNodes(
  reportNodes: Iterable<string>,
  nodes: NodeState[],
  now: number,
  graceMs: number,
  missingSince: ReadonlyMap<string, number>,
): NodeVerdict {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const verdict: NodeVerdict = { live: new Set(), collect: [], missingSince: new Map() };
  for (const name of reportNodes) {
    const node = byName.get(name);
    if (!node) {
      const since = missingSince.get(name) ?? now;
      verdict.missingSince.set(name, since);
      if (now - since > graceMs) verdict.collect.push(name);
      else verdict.live.add(name);
      continue;
    }
    const notReadyFor = node.ready || !node.since ? 0 : now - Date.parse(node.since);
    if (notReadyFor <= graceMs) verdict.live.add(name);
  }
  return verdict;
}
