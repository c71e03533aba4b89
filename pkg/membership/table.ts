// Router-side IGMPv3/MLDv2 membership state per (endpoint, group) (RFC 9776 6.4, RFC 9777 7.4),
// simplified for castnet's links: every endpoint link has exactly one host (the pod or VM) and the
// agent is its querier. Pure: time is passed in (ms), and the outputs are the node's
// MembershipRecords, change notifications, and the queries the agent must send.
import { isSsmGroup } from '../netaddr/address.js';
import type { ParsedFrame } from '../frame/ethernet.js';
import {
  parseMembershipFrame,
  type Compat,
  type GroupRecord,
  type IgmpReport,
  type ParseLimits,
} from '../igmp/parse.js';
import { LIMITS } from '../lookup/limits.js';
import type { MembershipRecord } from '../lookup/port.js';
import { TokenBucket, type RateLimit } from './token-bucket.js';

export interface MembershipConfig {
  /** Robustness variable (QRV). */
  robustness: number;
  queryIntervalMs: number;
  queryResponseIntervalMs: number;
  lastMemberQueryIntervalMs: number;
  /** Last member query count; defaults to `robustness`. */
  lastMemberQueryCount?: number;
  /** Expire left groups/sources at once instead of querying first: safe because each link has one host. */
  fastLeave: boolean;
  maxGroupsPerEndpoint: number;
  maxSourcesPerGroup: number;
  /** Per-endpoint report rate limit; excess reports are dropped and counted. */
  reportRate: RateLimit;
  parseLimits?: ParseLimits;
}

/** RFC 9776/9777 defaults: QI 125 s, QRI 10 s, robustness 2 (membership interval 260 s), LMQI 1 s. */
export const DEFAULT_MEMBERSHIP_CONFIG: MembershipConfig = Object.freeze({
  robustness: 2,
  queryIntervalMs: 125_000,
  queryResponseIntervalMs: 10_000,
  lastMemberQueryIntervalMs: 1_000,
  fastLeave: false,
  maxGroupsPerEndpoint: LIMITS.groupsPerEndpointDefault,
  // What a published membership may carry: a record with more sources is dropped and counted here,
  // not accepted and then refused by the lookup service.
  maxSourcesPerGroup: LIMITS.sourcesPerMembership,
  reportRate: { perSecond: 10, burst: 30 },
});

export interface EndpointRef {
  network: string;
  endpointId: number;
}

/** A query the agent should build (pkg/igmp buildIgmpQuery/buildMldQuery) and inject into the endpoint's link. */
export interface QueryRequest extends EndpointRef {
  /** Absent: a general query (send IGMP and/or MLD as the endpoint's addresses warrant). */
  group?: string;
  /** Group-and-source-specific when non-empty. */
  sources: string[];
  /** Whether `group` is IPv6 (MLD); meaningless for general queries. */
  mld: boolean;
  maxResponseMs: number;
  suppressRouterSide: boolean;
}

export interface Outcome {
  /** The node's records changed: publish `records()`. */
  changed: boolean;
  /** Queries to send now. */
  queries: QueryRequest[];
}

interface GroupState {
  endpoint: EndpointRef;
  group: string;
  mode: 'include' | 'exclude';
  /** EXCLUDE mode only: expiry time. */
  groupTimer: number;
  /** Source -> expiry time; 0 = in the EXCLUDE list (not forwarded). */
  sources: Map<string, number>;
  olderV1Until: number;
  olderV2Until: number;
  /** Canonical text of the published filter, to detect changes. */
  published: string;
}

interface EndpointState {
  ref: EndpointRef;
  bucket: TokenBucket;
  groups: Map<string, GroupState>;
  nextGeneralQuery: number;
  startupQueriesLeft: number;
  /** Groups published at the last settle(), to notice groups that vanished. */
  publishedGroups: number;
  /** Earliest timer or general query of this endpoint, as of the last settle(). */
  deadline: number;
}

interface Scheduled {
  at: number;
  query: QueryRequest;
  remaining: number;
}

export class MembershipTable {
  private readonly cfg: Required<MembershipConfig>;
  private readonly endpoints = new Map<number, EndpointState>();
  private scheduled: Scheduled[] = [];
  private readonly drops = new Map<string, number>();
  private readonly listeners = new Set<(records: MembershipRecord[]) => void>();
  private versionCounter = 0;

  constructor(
    readonly node: string,
    config: Partial<MembershipConfig> = {},
  ) {
    const c = { ...DEFAULT_MEMBERSHIP_CONFIG, ...config };
    const positive: (keyof MembershipConfig)[] = [
      'robustness',
      'queryIntervalMs',
      'queryResponseIntervalMs',
      'lastMemberQueryIntervalMs',
      'maxGroupsPerEndpoint',
      'maxSourcesPerGroup',
    ];
    for (const k of positive) {
      const v = c[k] as number;
      if (!Number.isFinite(v) || v <= 0) throw new Error(`membership config: ${k} must be > 0, got ${v}`);
    }
    const ceilings: Array<[keyof MembershipConfig, number]> = [
      ['maxGroupsPerEndpoint', LIMITS.groupsPerEndpointMax],
      ['maxSourcesPerGroup', LIMITS.sourcesPerMembership],
    ];
    for (const [k, max] of ceilings) {
      if ((c[k] as number) > max)
        throw new Error(`membership config: ${k} must be at most ${max} (the CRD's limit), got ${c[k]}`);
    }
    if (c.queryResponseIntervalMs >= c.queryIntervalMs) {
      throw new Error(
        `membership config: queryResponseIntervalMs (${c.queryResponseIntervalMs}) must be below queryIntervalMs (${c.queryIntervalMs})`,
      );
    }
    this.cfg = {
      ...c,
      lastMemberQueryCount: c.lastMemberQueryCount ?? c.robustness,
      // The parser's bound is only against work per frame; records over maxSourcesPerGroup are
      // dropped one by one in applyRecord, so one oversized record does not sink its siblings.
      parseLimits: c.parseLimits ?? { maxRecords: 64, maxSources: 2 * LIMITS.sourcesPerMembership },
    };
  }

  /** Group membership interval: robustness * QI + QRI (RFC 9776 8.4). Also the older-host-present interval. */
  get groupMembershipIntervalMs(): number {
    return this.cfg.robustness * this.cfg.queryIntervalMs + this.cfg.queryResponseIntervalMs;
  }

  private get lastMemberQueryTimeMs(): number {
    return this.cfg.lastMemberQueryIntervalMs * this.cfg.lastMemberQueryCount;
  }

  /** Starts querying a new endpoint link: `robustness` startup queries QI/4 apart, then every QI. */
  addEndpoint(ref: EndpointRef, now: number): Outcome {
    if (this.endpoints.has(ref.endpointId)) return { changed: false, queries: [] };
    this.endpoints.set(ref.endpointId, {
      ref,
      bucket: new TokenBucket(this.cfg.reportRate, now),
      groups: new Map(),
      nextGeneralQuery: now,
      startupQueriesLeft: this.cfg.robustness,
      publishedGroups: 0,
      deadline: now,
    });
    return this.tick(now);
  }

  /** Forgets an endpoint (deleted pod, migrated VM) and its memberships. */
  removeEndpoint(endpointId: number): Outcome {
    const e = this.endpoints.get(endpointId);
    if (!e) return { changed: false, queries: [] };
    this.endpoints.delete(endpointId);
    this.scheduled = this.scheduled.filter((s) => s.query.endpointId !== endpointId);
    return this.finish(e.groups.size > 0, []);
  }

  /**
   * Re-creates state published before an agent restart: each record is trusted for one membership
   * interval, and the startup general queries refresh or expire it.
   */
  restore(records: readonly MembershipRecord[], now: number): Outcome {
    let changed = false;
    for (const r of records) {
      if (r.node !== this.node) continue;
      const e = this.endpoints.get(r.endpointId);
      if (!e || e.ref.network !== r.network || e.groups.has(r.group)) continue;
      const st = this.newGroup(e, r.group);
      const gmi = now + this.groupMembershipIntervalMs;
      st.mode = r.filter.mode;
      st.groupTimer = r.filter.mode === 'exclude' ? gmi : 0;
      for (const s of r.filter.sources) st.sources.set(s, r.filter.mode === 'exclude' ? 0 : gmi);
    }
    for (const e of this.endpoints.values()) if (this.settle(e, now)) changed = true;
    return this.finish(changed, []);
  }

  /** Parses and applies an IGMP/MLD frame from a local endpoint's link; malformed input is counted. */
  handleFrame(
    endpointId: number,
    frame: ParsedFrame,
    bytes: Uint8Array,
    now: number,
    verifyChecksum = true,
  ): Outcome {
    const r = parseMembershipFrame(frame, bytes, { limits: this.cfg.parseLimits, verifyChecksum });
    if (!r.ok) {
      this.count(`malformed:${r.error.code}`);
      return { changed: false, queries: [] };
    }
    if (r.value.kind === 'query') {
      // Another querier on an endpoint link: castnet is the querier there, so it is only counted.
      this.count('query-from-endpoint');
      return { changed: false, queries: [] };
    }
    return this.handleReport(endpointId, r.value, now);
  }

  handleReport(endpointId: number, report: IgmpReport, now: number): Outcome {
    const e = this.endpoints.get(endpointId);
    if (!e) {
      this.count('unknown-endpoint');
      return { changed: false, queries: [] };
    }
    if (!e.bucket.take(now)) {
      this.count('rate-limited');
      return { changed: false, queries: [] };
    }
    if (report.ignoredRecords > 0) this.count('ignored-record', report.ignoredRecords);
    const queries: QueryRequest[] = [];
    for (const rec of report.records) this.applyRecord(e, rec, report.compat, now, queries);
    return this.finish(this.settle(e, now), queries);
  }

  /** Advances time: expires timers, sends due general and last-member queries. Call at nextDeadline(). */
  tick(now: number): Outcome {
    const queries: QueryRequest[] = [];
    let changed = false;
    // Only endpoints with something due are visited: a tick costs what expires, not the whole table.
    for (const e of this.endpoints.values()) {
      if (e.deadline > now) continue;
      if (now >= e.nextGeneralQuery) {
        queries.push({
          ...e.ref,
          sources: [],
          mld: false,
          maxResponseMs: this.cfg.queryResponseIntervalMs,
          suppressRouterSide: false,
        });
        const startup = e.startupQueriesLeft > 1;
        if (e.startupQueriesLeft > 0) e.startupQueriesLeft--;
        e.nextGeneralQuery = now + (startup ? this.cfg.queryIntervalMs / 4 : this.cfg.queryIntervalMs);
      }
      if (this.settle(e, now)) changed = true;
    }
    const keep: Scheduled[] = [];
    for (const s of this.scheduled) {
      if (s.at > now) {
        keep.push(s);
        continue;
      }
      queries.push({ ...s.query, suppressRouterSide: true });
      if (s.remaining > 1)
        keep.push({
          at: now + this.cfg.lastMemberQueryIntervalMs,
          query: s.query,
          remaining: s.remaining - 1,
        });
    }
    this.scheduled = keep;
    return this.finish(changed, queries);
  }

  /** The earliest time tick() has something to do. */
  nextDeadline(): number {
    let t = Infinity;
    for (const e of this.endpoints.values()) t = Math.min(t, e.deadline);
    for (const s of this.scheduled) t = Math.min(t, s.at);
    return t;
  }

  /** This node's memberships, as published to the lookup service. */
  records(): MembershipRecord[] {
    const out: MembershipRecord[] = [];
    for (const e of this.endpoints.values()) {
      for (const g of e.groups.values()) out.push(this.recordOf(g));
    }
    return out;
  }

  /** Increments on every change of records(). */
  get version(): number {
    return this.versionCounter;
  }

  /** Called with the new records after every change. Returns an unsubscribe. */
  onChange(listener: (records: MembershipRecord[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drops by reason: rate-limited, malformed:<code>, too-many-groups, too-many-sources, ssm-exclude-ignored, ... */
  counters(): Record<string, number> {
    return Object.fromEntries(this.drops);
  }

  private count(reason: string, n = 1): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + n);
  }

  private newGroup(e: EndpointState, group: string): GroupState {
    const st: GroupState = {
      endpoint: e.ref,
      group,
      mode: 'include',
      groupTimer: 0,
      sources: new Map(),
      olderV1Until: 0,
      olderV2Until: 0,
      published: '',
    };
    e.groups.set(group, st);
    return st;
  }

  private applyRecord(
    e: EndpointState,
    rec: GroupRecord,
    compat: Compat,
    now: number,
    queries: QueryRequest[],
  ): void {
    const ohpi = this.groupMembershipIntervalMs;
    const type = rec.type;
    let incoming = rec.sources;
    if ((type === 'IS_EX' || type === 'TO_EX') && isSsmGroup(rec.group)) {
      // RFC 4604 2.2.1: EXCLUDE-mode requests for SSM groups are ignored.
      this.count('ssm-exclude-ignored');
      return;
    }
    let st = e.groups.get(rec.group);
    if (!st) {
      // Without state the group is INCLUDE({}): only a record that asks for traffic creates state.
      if (type === 'BLOCK' || (type !== 'IS_EX' && type !== 'TO_EX' && incoming.length === 0)) return;
      if (e.groups.size >= this.cfg.maxGroupsPerEndpoint) {
        this.count('too-many-groups');
        return;
      }
      st = this.newGroup(e, rec.group);
    }
    if (compat === 1) st.olderV1Until = now + ohpi;
    if (compat === 2) st.olderV2Until = now + ohpi;
    const mode = st.olderV1Until > now ? 1 : st.olderV2Until > now ? 2 : 3;
    // RFC 9776 7.3.2: in compatibility mode BLOCK is ignored, TO_EX(x) is TO_EX({}), and v1 ignores leaves.
    if (mode < 3) {
      if (type === 'BLOCK') return;
      if (type === 'TO_EX' || type === 'IS_EX') incoming = [];
      if (mode === 1 && type === 'TO_IN' && incoming.length === 0 && compat !== 3) return;
    }
    const fresh = incoming.filter((s) => !st.sources.has(s)).length;
    if (st.sources.size + fresh > this.cfg.maxSourcesPerGroup) {
      this.count('too-many-sources');
      return;
    }
    const gmi = now + this.groupMembershipIntervalMs;
    const B = new Set(incoming);
    const query = (sources: string[], groupToo: boolean) =>
      this.lastMemberQuery(st, sources, groupToo, now, queries);
    if (st.mode === 'include') {
      const A = [...st.sources.keys()];
      switch (type) {
        case 'IS_IN':
        case 'ALLOW':
          for (const b of B) st.sources.set(b, gmi);
          break;
        case 'TO_IN':
          for (const b of B) st.sources.set(b, gmi);
          query(
            A.filter((a) => !B.has(a)),
            false,
          );
          break;
        case 'BLOCK':
          query(
            A.filter((a) => B.has(a)),
            false,
          );
          break;
        case 'IS_EX':
        case 'TO_EX': {
          const next = new Map<string, number>();
          for (const b of B) next.set(b, st.sources.get(b) ?? 0);
          st.mode = 'exclude';
          st.sources = next;
          st.groupTimer = gmi;
          if (type === 'TO_EX')
            query(
              A.filter((a) => B.has(a)),
              false,
            );
          break;
        }
      }
    } else {
      const X = new Set([...st.sources].filter(([, t]) => t > 0).map(([s]) => s));
      switch (type) {
        case 'IS_IN':
        case 'ALLOW':
          for (const a of B) st.sources.set(a, gmi);
          break;
        case 'TO_IN':
          for (const a of B) st.sources.set(a, gmi);
          query(
            [...X].filter((x) => !B.has(x)),
            true,
          );
          break;
        case 'BLOCK':
          for (const a of B) if (!st.sources.has(a)) st.sources.set(a, st.groupTimer);
          query(
            [...B].filter((a) => st.sources.get(a) !== 0),
            false,
          );
          break;
        case 'IS_EX':
        case 'TO_EX': {
          const next = new Map<string, number>();
          for (const a of B) next.set(a, st.sources.get(a) ?? (type === 'IS_EX' ? gmi : st.groupTimer));
          st.sources = next;
          if (type === 'TO_EX')
            query(
              [...B].filter((a) => next.get(a) !== 0),
              false,
            );
          st.groupTimer = gmi;
          break;
        }
      }
    }
  }

  /** "Send Q(G,S)" / "Send Q(G)": lower the timers to LMQT and query, or with fast leave expire them now. */
  private lastMemberQuery(
    st: GroupState,
    sources: string[],
    groupToo: boolean,
    now: number,
    queries: QueryRequest[],
  ): void {
    if (sources.length === 0 && !groupToo) return;
    const lowered = this.cfg.fastLeave ? now : now + this.lastMemberQueryTimeMs;
    for (const s of sources) {
      const t = st.sources.get(s);
      if (t !== undefined && t > lowered) st.sources.set(s, lowered);
    }
    if (groupToo && st.mode === 'exclude' && st.groupTimer > lowered) st.groupTimer = lowered;
    if (this.cfg.fastLeave) return;
    const mld = st.group.includes(':');
    const make = (srcs: string[]): QueryRequest => ({
      ...st.endpoint,
      group: st.group,
      sources: srcs,
      mld,
      maxResponseMs: this.cfg.lastMemberQueryIntervalMs,
      suppressRouterSide: false,
    });
    for (const q of [...(groupToo ? [make([])] : []), ...(sources.length > 0 ? [make(sources)] : [])]) {
      queries.push(q);
      if (this.cfg.lastMemberQueryCount > 1) {
        this.scheduled.push({
          at: now + this.cfg.lastMemberQueryIntervalMs,
          query: q,
          remaining: this.cfg.lastMemberQueryCount - 1,
        });
      }
    }
  }

  /**
   * Expires one endpoint's due timers (RFC 9776 6.5: a source timer deletes the source in INCLUDE and
   * moves it to the exclude list in EXCLUDE; the group timer switches EXCLUDE to INCLUDE), refreshes
   * its deadline, and says whether its published records changed.
   */
  private settle(e: EndpointState, now: number): boolean {
    let deadline = e.nextGeneralQuery;
    let changed = false;
    for (const [g, st] of e.groups) {
      if (st.mode === 'exclude' && st.groupTimer <= now) {
        st.mode = 'include';
        st.groupTimer = 0;
        for (const [s, t] of st.sources) if (t === 0) st.sources.delete(s);
      }
      for (const [s, t] of st.sources) {
        // 0 marks an excluded source only in EXCLUDE mode: an INCLUDE source lowered to a `now` of 0
        // (fast leave at time 0) has expired like any other.
        if (st.mode === 'include' ? t <= now : t > 0 && t <= now) {
          if (st.mode === 'include') st.sources.delete(s);
          else st.sources.set(s, 0);
        }
      }
      if (st.mode === 'include' && st.sources.size === 0) {
        e.groups.delete(g);
        continue;
      }
      if (st.mode === 'exclude') deadline = Math.min(deadline, st.groupTimer);
      for (const t of st.sources.values()) if (t > 0) deadline = Math.min(deadline, t);
      const r = this.recordOf(st);
      const text = `${r.filter.mode}:${r.filter.sources.join(',')}`;
      if (text !== st.published) {
        st.published = text;
        changed = true;
      }
    }
    if (e.groups.size !== e.publishedGroups) {
      e.publishedGroups = e.groups.size;
      changed = true;
    }
    e.deadline = deadline;
    return changed;
  }

  private recordOf(g: GroupState): MembershipRecord {
    const sources = [...g.sources]
      .filter(([, t]) => (g.mode === 'include' ? t > 0 : t === 0))
      .map(([s]) => s);
    sources.sort();
    return {
      network: g.endpoint.network,
      group: g.group,
      node: this.node,
      endpointId: g.endpoint.endpointId,
      filter: { mode: g.mode, sources },
    };
  }

  private finish(changed: boolean, queries: QueryRequest[]): Outcome {
    if (changed) {
      this.versionCounter++;
      if (this.listeners.size > 0) {
        const records = this.records();
        for (const l of this.listeners) l(records);
      }
    }
    return { changed, queries };
  }
}
