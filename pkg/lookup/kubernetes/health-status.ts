// Writes this node's underlay health (docs/underlay-health.md) into its MembershipReport's status:
// the UnderlayHealthy condition and status.underlay. Its own field manager, so the report writer's
// Truncated condition and this one never remove each other (conditions are a list-map keyed by
// type). The latest report wins; a failed write (the report not created yet, the apiserver away)
// is retried after a pause, while the agent goes on probing.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { errorMessage } from '../../base/errors.js';
import { apiCall } from '../../k8s/api-error.js';
import { applyConditions } from '../../k8s/conditions.js';
import { crd, SERVER_SIDE_APPLY } from '../../k8s/resources.js';
import { API_VERSION, KINDS, type Condition } from '../../k8s/types.js';
import type { UnderlayHealthReport } from '../port.js';

export const HEALTH_FIELD_MANAGER = 'castnet-agent-health';
export const HEALTH_CONDITION = 'UnderlayHealthy';
const RETRY_MS = 2000;

export class HealthStatusWriter {
  private pending: UnderlayHealthReport | undefined;
  private condition: Condition | undefined;
  private writing = false;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly custom: CustomObjectsApi,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Schedules a write of `report`; resolves at once (the write goes on in the background). */
  set(report: UnderlayHealthReport): void {
    this.pending = report;
    void this.flush();
  }

  dispose(): void {
    this.closed = true;
    clearTimeout(this.retry);
  }

  private async flush(): Promise<void> {
    if (this.writing || this.closed || !this.pending) return;
    this.writing = true;
    const report = this.pending;
    this.pending = undefined;
    try {
      await this.write(report);
    } catch (err) {
      this.pending ??= report;
      this.onError(
        new Error(`underlay health of MembershipReport ${report.node}: ${errorMessage(err)}`, {
          cause: err,
        }),
      );
      clearTimeout(this.retry);
      this.retry = setTimeout(() => void this.flush(), RETRY_MS);
      this.retry.unref();
      return;
    } finally {
      this.writing = false;
    }
    void this.flush();
  }

  private async write(r: UnderlayHealthReport): Promise<void> {
    const [condition] = applyConditions(
      this.condition ? [this.condition] : [],
      [{ type: HEALTH_CONDITION, ...r.condition }],
      new Date().toISOString(),
    );
    const body = {
      apiVersion: API_VERSION,
      kind: KINDS.membershipReport.kind,
      metadata: { name: r.node },
      // No peers yet: leave the list out, as server-side apply drops an empty list-map (a required
      // `peers: []` was refused as missing on every agent's first write).
      status: {
        conditions: [condition],
        underlay: { probeBytes: r.probeBytes, ...(r.peers.length ? { peers: r.peers } : {}) },
      },
    };
    await apiCall(`apply the underlay health of MembershipReport ${r.node}`, () =>
      this.custom.patchClusterCustomObjectStatus(
        { ...crd('membershipReport'), name: r.node, body, fieldManager: HEALTH_FIELD_MANAGER, force: true },
        SERVER_SIDE_APPLY,
      ),
    );
    this.condition = condition;
  }
}
