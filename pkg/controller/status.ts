// The status the controller wants on each MulticastGroup, and whether writing it would change anything.
import type { Condition, MulticastGroup, MulticastGroupStatus } from '../k8s/types';
import { MAX_STATUS_MEMBERS } from '../k8s/types';
import { applyConditions } from './conditions';
import type { ResolvedGroup } from './resolve';

export function desiredGroupStatus(
  g: MulticastGroup,
  r: ResolvedGroup,
  now: string,
  maxMembers = MAX_STATUS_MEMBERS,
): MulticastGroupStatus {
  const desired = [...r.conditions];
  if (r.members.length > maxMembers) {
    // etcd caps an object at 1.5 MB; counts stay exact and agents resolve from reports, not from status.
    desired.push({
      type: 'MembersTruncated',
      status: 'True',
      reason: 'TooManyMembers',
      message: `status lists the first ${maxMembers} of ${r.members.length} members`,
      ...(g.metadata.generation !== undefined ? { observedGeneration: g.metadata.generation } : {}),
    });
  }
  return {
    ...(g.metadata.generation !== undefined ? { observedGeneration: g.metadata.generation } : {}),
    members: r.members.slice(0, maxMembers),
    counts: r.counts,
    conditions: applyConditions(g.status?.conditions, desired, now),
  };
}

/** Deep equality of two statuses as the apiserver would store them (key order does not matter). */
export function sameStatus(
  a: MulticastGroupStatus | undefined,
  b: MulticastGroupStatus | undefined,
): boolean {
  return canonicalJson(a ?? {}) === canonicalJson(b ?? {});
}

function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(
          Object.entries(val as Record<string, unknown>).sort(([x], [y]) => x.localeCompare(y)),
        )
      : val,
  );
}

export type { Condition };
