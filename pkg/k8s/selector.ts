// Which pods and VMs a MulticastGroup's label selectors select. One rule for the agents, which
// report the selected endpoints on their node (and so deliver to them), and for the controller, which
// shows the members in status: the two must never disagree. Pure.
import type { LabeledObject, LabelSelector, MulticastGroup } from './types.js';

/** Kubernetes label selector semantics (metav1.LabelSelector): all requirements must hold. */

export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const req of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!has || !values.includes(labels[req.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[req.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** A selector with no requirements would select everything; the CRD forbids it and so do we. */
export const isEmptySelector = (sel: LabelSelector): boolean =>
  Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0;

/** The kinds of object a group's `spec.selectors` select: Pods and KubeVirt VMIs. */
export type SelectedKind = 'pods' | 'vmis';

/**
 * Whether group `g` selects `o` (a Pod or a VMI, as `kind` says): `o` is in the group's namespace
 * and its labels match the group's selector for that kind. An empty selector selects nothing.
 */
export function groupSelects(g: MulticastGroup, kind: SelectedKind, o: LabeledObject): boolean {
  const sel = g.spec.selectors?.[kind];
  return (
    sel !== undefined &&
    !isEmptySelector(sel) &&
    o.namespace === (g.metadata.namespace ?? 'default') &&
    selectorMatches(sel, o.labels)
  );
}

/** Whether the group has a selector at all (only those can select an endpoint). */
export const hasSelectors = (g: MulticastGroup): boolean =>
  g.spec.selectors?.pods !== undefined || g.spec.selectors?.vmis !== undefined;
