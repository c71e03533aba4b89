// What of a node's desired MembershipReport can be written: the CRD's item limits, a byte budget
// well under etcd's object limit, and none of the entries the apiserver already refused. Whatever
// does not fit is dropped entry by entry, so one endpoint's oversized or invalid state never keeps
// the rest of its node from being published. Pure.
import type { DesiredCondition } from '../../k8s/conditions.js';
import type { MembershipReportSpec, ReportEndpoint, ReportMembership } from '../../k8s/types.js';
import { LIMITS, jsonBytes } from '../limits.js';

export type DropReason =
  | 'rejected'
  | 'too-many-sources'
  | 'too-many-endpoints'
  | 'too-many-memberships'
  | 'report-bytes'
  | 'endpoint-dropped';

export interface DroppedEntry {
  /** The entry's identity and content: an unchanged entry keeps its key, so it is reported once. */
  key: string;
  reason: DropReason;
  endpointID: number;
  /** A membership's group; absent for an endpoint. */
  group?: string;
  network: string;
  /** The endpoint's pod, when the report names one (where an Event about it belongs). */
  pod?: { namespace: string; name: string; uid?: string };
  detail: string;
}

export interface BoundedReport {
  spec: MembershipReportSpec;
  dropped: DroppedEntry[];
}

export type ReportLimits = Pick<
  typeof LIMITS,
  'endpointsPerNode' | 'membershipsPerNode' | 'sourcesPerMembership' | 'reportBytes'
>;

export const endpointKey = (e: ReportEndpoint): string => `endpoint ${JSON.stringify(e)}`;
export const membershipKey = (m: ReportMembership): string => `membership ${JSON.stringify(m)}`;

/**
 * Bounds `spec`. `refused` maps the keys of entries the apiserver rejected to its reason. Endpoints
 * take the byte budget first (other nodes need them for unicast); memberships share the rest fairly:
 * every endpoint's first membership before any endpoint's second, so one endpoint with thousands of
 * groups cannot crowd out the others. Kept entries stay in their original order.
 */
export function boundReport(
  spec: MembershipReportSpec,
  refused: ReadonlyMap<string, string> = new Map(),
  limits: ReportLimits = LIMITS,
): BoundedReport {
  const dropped: DroppedEntry[] = [];
  const pods = new Map((spec.endpoints ?? []).map((e) => [e.endpointID, e.pod]));
  const drop = (
    key: string,
    reason: DropReason,
    entry: { endpointID: number; network: string; group?: string },
    detail: string,
  ): void => {
    const pod = pods.get(entry.endpointID);
    dropped.push({ key, reason, ...entry, ...(pod ? { pod } : {}), detail });
  };
  let bytes = jsonBytes({ ...spec, endpoints: [], memberships: [] });

  const endpoints: ReportEndpoint[] = [];
  const droppedEndpoints = new Set<number>();
  for (const e of spec.endpoints ?? []) {
    const key = endpointKey(e);
    const size = jsonBytes(e) + 1;
    const why = refused.has(key)
      ? (['rejected', refused.get(key)!] as const)
      : endpoints.length >= limits.endpointsPerNode
        ? (['too-many-endpoints', `the node has more than ${limits.endpointsPerNode} endpoints`] as const)
        : bytes + size > limits.reportBytes
          ? (['report-bytes', `the report would exceed ${limits.reportBytes} bytes`] as const)
          : undefined;
    if (why) {
      drop(key, why[0], e, why[1]);
      droppedEndpoints.add(e.endpointID);
      continue;
    }
    endpoints.push(e);
    bytes += size;
  }

  const candidates: Array<{ m: ReportMembership; key: string; index: number; rank: number; size: number }> =
    [];
  const ranks = new Map<number, number>();
  for (const [index, m] of (spec.memberships ?? []).entries()) {
    const key = membershipKey(m);
    const sources = m.filter?.sources?.length ?? 0;
    if (droppedEndpoints.has(m.endpointID)) {
      drop(key, 'endpoint-dropped', m, `endpoint ${m.endpointID} was left out of the report`);
    } else if (refused.has(key)) {
      drop(key, 'rejected', m, refused.get(key)!);
    } else if (sources > limits.sourcesPerMembership) {
      drop(key, 'too-many-sources', m, `${sources} sources, at most ${limits.sourcesPerMembership}`);
    } else {
      const rank = ranks.get(m.endpointID) ?? 0;
      ranks.set(m.endpointID, rank + 1);
      candidates.push({ m, key, index, rank, size: jsonBytes(m) + 1 });
    }
  }
  const kept = new Set<number>();
  for (const c of [...candidates].sort((a, b) => a.rank - b.rank || a.index - b.index)) {
    if (kept.size >= limits.membershipsPerNode) {
      drop(c.key, 'too-many-memberships', c.m, `the node has more than ${limits.membershipsPerNode}`);
    } else if (bytes + c.size > limits.reportBytes) {
      drop(c.key, 'report-bytes', c.m, `the report would exceed ${limits.reportBytes} bytes`);
    } else {
      kept.add(c.index);
      bytes += c.size;
    }
  }
  const memberships = candidates.filter((c) => kept.has(c.index)).map((c) => c.m);
  return {
    spec: {
      ...spec,
      ...(spec.endpoints ? { endpoints } : {}),
      ...(spec.memberships ? { memberships } : {}),
    },
    dropped,
  };
}

/** One cause of a 422 Invalid: the field it names and why. */
export interface InvalidCause {
  field?: string;
  message?: string;
}

/**
 * The entries of a written `spec` that a 422's causes name (e.g. `spec.memberships[3].filter.sources`),
 * by key, with the apiserver's reason. Causes naming no endpoint or membership are not mapped.
 */
export function refusedEntries(
  spec: MembershipReportSpec,
  causes: readonly InvalidCause[],
): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of causes) {
    const m = /^spec\.(endpoints|memberships)\[(\d+)\]/.exec(c.field ?? '');
    if (!m) continue;
    const i = Number(m[2]);
    const entry = m[1] === 'endpoints' ? spec.endpoints?.[i] : spec.memberships?.[i];
    if (!entry) continue;
    const key =
      m[1] === 'endpoints' ? endpointKey(entry as ReportEndpoint) : membershipKey(entry as ReportMembership);
    const why = `refused by the apiserver: ${c.field}: ${c.message ?? 'invalid'}`;
    out.set(key, out.has(key) ? `${out.get(key)}; ${why}` : why);
  }
  return out;
}

const MAX_LISTED = 5;

export const describeDropped = (d: DroppedEntry): string => {
  const owner = d.pod ? `pod ${d.pod.namespace}/${d.pod.name} ` : '';
  const what = d.group ? `membership of ${d.group}` : 'endpoint';
  return `${owner}endpoint ${d.endpointID} on ${d.network}: ${what} left out (${d.reason}: ${d.detail})`;
};

/** The report's Truncated condition: what was left out, counted by reason, the first few named. */
export function truncationCondition(dropped: readonly DroppedEntry[]): DesiredCondition {
  if (dropped.length === 0) {
    return {
      type: 'Truncated',
      status: 'False',
      reason: 'Complete',
      message: 'every endpoint and membership of this node is in the report',
    };
  }
  const byReason = new Map<string, number>();
  for (const d of dropped) byReason.set(d.reason, (byReason.get(d.reason) ?? 0) + 1);
  const counts = [...byReason].map(([r, n]) => `${n} ${r}`).join(', ');
  const listed = dropped.slice(0, MAX_LISTED).map(describeDropped).join('; ');
  const more = dropped.length > MAX_LISTED ? `; and ${dropped.length - MAX_LISTED} more` : '';
  return {
    type: 'Truncated',
    status: 'True',
    reason: byReason.has('rejected') ? 'EntriesRejected' : 'LimitsExceeded',
    message: `${dropped.length} entries left out (${counts}): ${listed}${more}`.slice(0, 4096),
  };
}
