// Membership changes as Kubernetes Events, summarized per reconcile and rate-limited per group so a
// flapping group cannot flood the apiserver.
import type { Condition, GroupMember } from '../k8s/types.js';
import type { EventDraft } from '../k8s/events.js';

export { EventLimiter, type EventDraft } from '../k8s/events.js';

const memberKey = (m: GroupMember): string => (m.node ? `${m.node}/${m.endpointID}` : m.endpoint);

export function diffMembers(
  before: GroupMember[] | undefined,
  after: GroupMember[],
): { joined: GroupMember[]; left: GroupMember[] } {
  const was = new Map((before ?? []).map((m) => [memberKey(m), m]));
  const is = new Map(after.map((m) => [memberKey(m), m]));
  return {
    joined: after.filter((m) => !was.has(memberKey(m))),
    left: (before ?? []).filter((m) => !is.has(memberKey(m))),
  };
}

export const describeMember = (m: GroupMember): string => {
  const owner = m.vm ? `vm ${m.vm}` : m.pod ? `pod ${m.pod}` : undefined;
  const where = [owner, m.node ? `on ${m.node}` : undefined].filter(Boolean).join(' ');
  return `${m.endpoint}${where ? ` (${where})` : ''} via ${m.via}${m.group ? ` ${m.group}` : ''}`;
};

const MAX_LISTED = 5;

function summarize(verb: string, ms: GroupMember[]): string {
  const listed = ms.slice(0, MAX_LISTED).map(describeMember).join(', ');
  const more = ms.length > MAX_LISTED ? ` and ${ms.length - MAX_LISTED} more` : '';
  return `${ms.length} ${verb}: ${listed}${more}`;
}

/** Events for one group's transition from `before` to `after`. */
export function groupEvents(
  before: { members?: GroupMember[]; conditions?: Condition[] } | undefined,
  after: { members: GroupMember[]; conditions: Condition[] },
): EventDraft[] {
  const events: EventDraft[] = [];
  const { joined, left } = diffMembers(before?.members, after.members);
  if (joined.length)
    events.push({ type: 'Normal', reason: 'MembersJoined', message: summarize('joined', joined) });
  if (left.length) events.push({ type: 'Normal', reason: 'MembersLeft', message: summarize('left', left) });
  const was = new Map((before?.conditions ?? []).map((c) => [c.type, c]));
  for (const c of after.conditions) {
    const prev = was.get(c.type);
    if (c.status === 'False' && (prev?.status !== 'False' || prev.reason !== c.reason)) {
      events.push({ type: 'Warning', reason: c.reason, message: c.message });
    }
  }
  return events;
}
