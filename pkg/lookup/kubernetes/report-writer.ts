// Keeps this node's MembershipReport equal to the agent's desired state. Changes are coalesced: at
// most one write per interval, the first one at once, so a join reaches the apiserver within a few
// milliseconds while a burst of joins costs one write. A failed write (apiserver down) is retried
// with backoff until it succeeds; `reassert` re-sends after a re-list or when the stored report
// drifted (deleted, or written by someone else).
import type { ApiClient } from '../../k8s/client';
import { resourcePath } from '../../k8s/client';
import { API_VERSION, KINDS, type MembershipReportSpec } from '../../k8s/types';

/** The field manager of the agent's server-side apply: it owns the whole spec of its report. */
export const FIELD_MANAGER = 'castnet-agent';

export interface ReportWriterOptions {
  /** Minimum time between two writes. */
  intervalMs: number;
  maxBackoffMs: number;
  onError: (err: unknown) => void;
  /** Called after each successful write. */
  onWritten?: (spec: MembershipReportSpec) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ReportWriter {
  private desired: MembershipReportSpec | undefined;
  private dirty = false;
  private running = false;
  private closed = false;
  private lastWriteAt = 0;
  /** Callers waiting for the write that will carry their change. */
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  /** Successful writes, for tests and the stats page. */
  writes = 0;

  constructor(
    private readonly api: ApiClient,
    private readonly opts: ReportWriterOptions,
  ) {}

  /**
   * Sets the report's desired spec and schedules a write. Resolves once a write carrying it
   * succeeded; rejects with the error of the first failed attempt (retries go on regardless).
   */
  set(spec: MembershipReportSpec): Promise<void> {
    this.desired = spec;
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

  get spec(): MembershipReportSpec | undefined {
    return this.desired;
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
        const spec = this.desired!;
        const waiters = this.waiters;
        this.waiters = [];
        try {
          await this.write(spec);
          this.lastWriteAt = Date.now();
          this.writes++;
          backoff = this.opts.intervalMs;
          this.opts.onWritten?.(spec);
          for (const w of waiters) w.resolve();
        } catch (err) {
          this.dirty = true;
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

  private async write(spec: MembershipReportSpec): Promise<void> {
    const path = resourcePath(API_VERSION, KINDS.membershipReport.plural, { name: spec.node });
    const body = {
      apiVersion: API_VERSION,
      kind: KINDS.membershipReport.kind,
      metadata: { name: spec.node },
      spec,
    };
    // Server-side apply creates or replaces in one request, with no read-modify-write conflicts.
    await this.api.patch(path, body, 'apply', { fieldManager: FIELD_MANAGER, force: 'true' });
  }

  close(): void {
    this.closed = true;
    const closed = new Error('the lookup service was closed before the report was written');
    for (const w of this.waiters.splice(0)) w.reject(closed);
  }
}
