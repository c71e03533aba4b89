// Keeps this node's MembershipReport equal to the agent's desired state. Changes are coalesced: at
// most one write per interval, the first one at once, so a join reaches the apiserver within a few
// milliseconds while a burst of joins costs one write. A failed write (apiserver down) is retried
// with backoff until it succeeds; `reassert` re-sends after a re-list or when the stored report
// drifted (deleted, or written by someone else).
//
// What is written is bounded (report-bounds.ts): entries past the CRD's limits or its byte budget, and
// entries the apiserver refused (a 422 naming them), are left out one by one and the rest is written
// at once, so one endpoint's bad state never freezes its node's report. What was left out is counted,
// handed to `onDropped` once per entry, and stated in the report's Truncated condition.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { sleep } from '../../base/async.js';
import { apiCall, apiStatus } from '../../k8s/api-error.js';
import { applyConditions } from '../../k8s/conditions.js';
import { crd, SERVER_SIDE_APPLY } from '../../k8s/resources.js';
import { API_VERSION, KINDS, type Condition, type MembershipReportSpec } from '../../k8s/types.js';
import {
  boundReport,
  endpointKey,
  membershipKey,
  refusedEntries,
  truncationCondition,
  type BoundedReport,
  type DroppedEntry,
} from './report-bounds.js';

/** The field manager of the agent's server-side apply: it owns the whole spec of its report. */
export const FIELD_MANAGER = 'castnet-agent';

export interface ReportWriterOptions {
  /** Minimum time between two writes. */
  intervalMs: number;
  maxBackoffMs: number;
  onError: (err: unknown) => void;
  /** Called after each successful write. */
  onWritten?: (spec: MembershipReportSpec) => void;
  /** Entries a successful write left out that the previous one did not. */
  onDropped?: (entries: DroppedEntry[]) => void;
}

export class ReportWriter {
  private desired: MembershipReportSpec | undefined;
  /**
   * The desired spec within limits and without refused entries: what the next write carries.
   * Computed when needed, once per write however many `set` calls a write coalesces.
   */
  private bounded: BoundedReport | undefined;
  /** Keys of entries the apiserver refused, with its reason; only those still desired are kept. */
  private readonly refused = new Map<string, string>();
  /** Keys of the entries the last successful write left out. */
  private leftOut = new Set<string>();
  /** The Truncated condition last written to the report's status. */
  private condition: Condition | undefined;
  private dirty = false;
  private running = false;
  private closed = false;
  private lastWriteAt = 0;
  /** Callers waiting for the write that will carry their change. */
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  /** Successful writes, for tests and the stats page. */
  writes = 0;
  /** Entries left out of the report, by reason, each counted once when first left out. */
  readonly drops: Record<string, number> = {};

  constructor(
    private readonly custom: CustomObjectsApi,
    private readonly opts: ReportWriterOptions,
  ) {}

  /**
   * Sets the report's desired spec and schedules a write. Resolves once a write carrying it
   * succeeded; rejects with the error of the first failed attempt (retries go on regardless).
   */
  set(spec: MembershipReportSpec): Promise<void> {
    this.desired = spec;
    this.bounded = undefined;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.reassert();
    return done;
  }

  /** Schedules a write of the current desired spec (no-op before the first `set`). */
  reassert(): void {
    if (!this.desired || this.closed) return;
    this.dirty = true;
    if (!this.running) {
      this.running = true;
      void this.loop();
    }
  }

  /** The spec the writer writes: the desired one, bounded. */
  get spec(): MembershipReportSpec | undefined {
    return this.desired && this.current().spec;
  }

  /** Whether a write is scheduled or in flight. */
  get busy(): boolean {
    return this.running;
  }

  private async loop(): Promise<void> {
    let backoff = this.opts.intervalMs;
    try {
      while (this.dirty && !this.closed) {
        const wait = this.lastWriteAt + this.opts.intervalMs - Date.now();
        // Let callers in the same tick (endpoints, then memberships) land in one write.
        await (wait > 0 ? sleep(wait) : new Promise((r) => setImmediate(r)));
        if (this.closed) return;
        this.dirty = false;
        const { spec, dropped } = this.current();
        const waiters = this.waiters;
        this.waiters = [];
        try {
          await this.write(spec);
          this.lastWriteAt = Date.now();
          this.writes++;
          backoff = this.opts.intervalMs;
          this.opts.onWritten?.(spec);
          this.noteDropped(dropped);
          await this.writeStatus(spec.node, dropped);
          for (const w of waiters) w.resolve();
        } catch (err) {
          this.dirty = true;
          const status = apiStatus(err);
          const refused = status?.code === 422 ? refusedEntries(spec, status.causes) : new Map();
          if (refused.size > 0) {
            // The apiserver named the entries it refuses: leave them out and write the rest at once.
            for (const [key, why] of refused) this.refused.set(key, why);
            this.bounded = undefined;
            this.waiters = [...waiters, ...this.waiters];
            continue;
          }
          for (const w of waiters) w.reject(err);
          this.opts.onError(err);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, this.opts.maxBackoffMs);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private current(): BoundedReport {
    return (this.bounded ??= this.bound(this.desired!));
  }

  private bound(spec: MembershipReportSpec): BoundedReport {
    if (this.refused.size > 0) {
      const live = new Set([
        ...(spec.endpoints ?? []).map(endpointKey),
        ...(spec.memberships ?? []).map(membershipKey),
      ]);
      for (const key of this.refused.keys()) if (!live.has(key)) this.refused.delete(key);
    }
    return boundReport(spec, this.refused);
  }

  private noteDropped(dropped: DroppedEntry[]): void {
    const fresh = dropped.filter((d) => !this.leftOut.has(d.key));
    this.leftOut = new Set(dropped.map((d) => d.key));
    for (const d of fresh) this.drops[d.reason] = (this.drops[d.reason] ?? 0) + 1;
    if (fresh.length > 0) this.opts.onDropped?.(fresh);
  }

  /** States in the report's status what the spec left out, when that changed. Never throws. */
  private async writeStatus(node: string, dropped: DroppedEntry[]): Promise<void> {
    const want = truncationCondition(dropped);
    const was = this.condition;
    if (was && was.status === want.status && was.reason === want.reason && was.message === want.message)
      return;
    const [condition] = applyConditions(was ? [was] : [], [want], new Date().toISOString());
    const count = (membership: boolean) =>
      dropped.filter((d) => (d.group !== undefined) === membership).length;
    const body = {
      apiVersion: API_VERSION,
      kind: KINDS.membershipReport.kind,
      metadata: { name: node },
      status: { conditions: [condition], leftOut: { endpoints: count(false), memberships: count(true) } },
    };
    try {
      await apiCall(`apply the status of MembershipReport ${node}`, () =>
        this.custom.patchClusterCustomObjectStatus(
          { ...crd('membershipReport'), name: node, body, fieldManager: FIELD_MANAGER, force: true },
          SERVER_SIDE_APPLY,
        ),
      );
      this.condition = condition;
    } catch (err) {
      // The spec is what matters to other nodes; the status is retried with the next write.
      this.opts.onError(err);
    }
  }

  private async write(spec: MembershipReportSpec): Promise<void> {
    const body = {
      apiVersion: API_VERSION,
      kind: KINDS.membershipReport.kind,
      metadata: { name: spec.node },
      spec,
    };
    // Server-side apply creates or replaces in one request, with no read-modify-write conflicts.
    await apiCall(`apply MembershipReport ${spec.node}`, () =>
      this.custom.patchClusterCustomObject(
        { ...crd('membershipReport'), name: spec.node, body, fieldManager: FIELD_MANAGER, force: true },
        SERVER_SIDE_APPLY,
      ),
    );
  }

  dispose(): void {
    this.closed = true;
    const closed = new Error('the lookup service was closed before the report was written');
    for (const w of this.waiters.splice(0)) w.reject(closed);
  }
}
