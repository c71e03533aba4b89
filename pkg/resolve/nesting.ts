// The nesting rule for multicast groups, the one both the agent (per packet) and the controller (for
// status) apply, so traffic and `kubectl describe` never disagree (docs/membership.md "Nesting").
//
// A group's nesting is the graph reachable from it through its edges: nested groups and static
// members that are group addresses (the caller says what the edges are). The group is rejected when
// that graph holds a cycle or a chain longer than MAX_GROUP_DEPTH edges: the agent drops its traffic
// and the controller lists no members. A group reached twice through a diamond is no problem.
//
// Pure and generic over the group type: the agent walks GroupSpecs, the controller its own keys.

/** Nesting levels below a group; a longer chain rejects the group. */
export const MAX_GROUP_DEPTH = 8;

export interface NestingProblem<G> {
  code: 'cycle' | 'too-deep';
  /** The chain of groups from the rejected group; for a cycle it ends where the loop closes. */
  path: G[];
}

type Verdict<G> = { height: number; via: G | undefined } | { cycle: G[] };

interface Frame<G> {
  node: G;
  children: Iterator<G>;
  height: number;
  via: G | undefined;
  cycle: G[] | undefined;
}

/**
 * Verdicts over one fixed graph, memoised per group: build one per graph snapshot (the agent per
 * directory index, the controller per resolution pass). Linear in the graph, even for wide diamonds,
 * and iterative, so a very long chain cannot overflow the stack.
 */
export class NestingGraph<G> {
  private readonly verdicts = new Map<G, Verdict<G>>();

  constructor(private readonly children: (g: G) => Iterable<G>) {}

  /**
   * Why traffic to these groups (the declarations sharing one address) is rejected, or undefined.
   * A cycle wins over depth, so the answer does not depend on the order of `roots`.
   */
  check(roots: Iterable<G>): NestingProblem<G> | undefined {
    let deep: NestingProblem<G> | undefined;
    for (const r of roots) {
      const v = this.verdict(r);
      if ('cycle' in v) return { code: 'cycle', path: v.cycle };
      if (v.height > MAX_GROUP_DEPTH && !deep) deep = { code: 'too-deep', path: this.deepestChain(r) };
    }
    return deep;
  }

  private deepestChain(g: G): G[] {
    const path: G[] = [];
    for (let x: G | undefined = g; x !== undefined;) {
      path.push(x);
      const v = this.verdicts.get(x);
      x = v && !('cycle' in v) ? v.via : undefined;
    }
    return path;
  }

  private verdict(root: G): Verdict<G> {
    const known = this.verdicts.get(root);
    if (known) return known;
    const stack: Frame<G>[] = [];
    const onStack = new Map<G, number>();
    const push = (node: G): void => {
      onStack.set(node, stack.length);
      stack.push({
        node,
        children: this.children(node)[Symbol.iterator](),
        height: 0,
        via: undefined,
        cycle: undefined,
      });
    };
    const absorb = (parent: Frame<G>, child: G, v: Verdict<G>): void => {
      if (parent.cycle) return;
      if ('cycle' in v) parent.cycle = [parent.node, ...v.cycle];
      else if (v.height + 1 > parent.height) {
        parent.height = v.height + 1;
        parent.via = child;
      }
    };
    push(root);
    for (;;) {
      const top = stack[stack.length - 1];
      const next = top.cycle ? undefined : top.children.next();
      if (next && !next.done) {
        const c = next.value;
        const v = this.verdicts.get(c);
        const at = onStack.get(c);
        if (v) absorb(top, c, v);
        else if (at === undefined) push(c);
        else {
          // A back edge: every group on the loop gets the loop, read from itself.
          const loop = stack.slice(at).map((f) => f.node);
          for (let i = 0; i < loop.length; i++) {
            const f = stack[at + i];
            f.cycle ??= [...loop.slice(i), ...loop.slice(0, i + 1)];
          }
        }
        continue;
      }
      stack.pop();
      onStack.delete(top.node);
      const v: Verdict<G> = top.cycle ? { cycle: top.cycle } : { height: top.height, via: top.via };
      this.verdicts.set(top.node, v);
      const parent = stack[stack.length - 1];
      if (!parent) return v;
      absorb(parent, top.node, v);
    }
  }
}

/**
 * Every group reachable from `roots` (roots first), each once. `descend` decides whether a group's
 * edges are followed (the agent stops at a group whose allowedSources refuse the packet's source).
 * Call it only for roots NestingGraph.check accepted: then the walk is finite and shallow.
 */
export function reachableGroups<G>(
  roots: Iterable<G>,
  children: (g: G) => Iterable<G>,
  descend: (g: G) => boolean = () => true,
): G[] {
  const seen = new Set<G>(roots);
  const out = [...seen];
  for (let i = 0; i < out.length; i++) {
    if (!descend(out[i])) continue;
    for (const c of children(out[i])) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
    }
  }
  return out;
}
