// The status the controller wants on each MulticastGroup, and whether writing it would change anything.
import type { Condition, MulticastGroup, MulticastGroupStatus } from '../k8s/types.js';
import { MAX_STATUS_MEMBERS } from '../k8s/types.js';
import { applyConditions } from '../k8s/conditions.js';
import { LIMITS, jsonBytes } from '../lookup/limits.js';
import type { ResolvedGroup } from './resolve.js';

/** How many of `members` fit in the status: at most `maxMembers`, and their JSON in `maxBytes`. */
function membersThatFit(members: ResolvedGroup['members'], maxMembers: number, maxBytes: number): number {
  let bytes = 2;
  for (let i = 0; i < Math.min(members.length, maxMembers); i++) {
    bytes += jsonBytes(members[i]) + 1;
    if (bytes > maxBytes) return i;
  }
  return Math.min(members.length, maxMembers);
}

export function desiredGroupStatus(
  g: MulticastGroup,
  r: ResolvedGroup,
  now: string,
  maxMembers = MAX_STATUS_MEMBERS,
  maxMemberBytes = LIMITS.statusBytes,
): MulticastGroupStatus {
  const desired = [...r.conditions];
  const listed = membersThatFit(r.members, maxMembers, maxMemberBytes);
  if (listed < r.members.length) {
    // etcd caps an object at 1.5 MB; counts stay exact and agents resolve from reports, not from status.
    desired.push({
      type: 'MembersTruncated',
      status: 'True',
      reason: listed < maxMembers ? 'StatusTooLarge' : 'TooManyMembers',
      message: `status lists the first ${listed} of ${r.members.length} members${listed < maxMembers ? ` (their source filters fill ${maxMemberBytes} bytes)` : ''}`,
      ...(g.metadata.generation !== undefined ? { observedGeneration: g.metadata.generation } : {}),
    });
  }
  return {
    ...(g.metadata.generation !== undefined ? { observedGeneration: g.metadata.generation } : {}),
    members: r.members.slice(0, listed),
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
