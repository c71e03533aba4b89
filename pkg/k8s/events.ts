// Kubernetes Events: posting one (core/v1) and limiting how many, so neither a flapping group nor a
// misbehaving pod can flood the apiserver. Events are best effort: callers never wait on them to retry.
import type { CoreV1Api } from '@kubernetes/client-node';
import { apiCall } from './api-error.js';

export interface EventDraft {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  /** The Event's namespace; for a cluster-scoped object, "default" (as for Nodes). */
  namespace?: string;
  uid?: string;
}

/** Creates a core/v1 Event about `obj`. */
export async function postEvent(
  core: CoreV1Api,
  obj: InvolvedObject,
  e: EventDraft,
  /** component: "controller" or "agent"; instance: which one (pod or node name). */
  reporter: { component: string; instance: string },
): Promise<void> {
  const namespace = obj.namespace ?? 'default';
  const now = new Date();
  await apiCall(`create Event ${e.reason} about ${obj.kind} ${obj.name}`, () =>
    core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${obj.name}.`, namespace },
        involvedObject: obj,
        type: e.type,
        reason: e.reason,
        message: e.message.slice(0, 1024),
        source: { component: `castnet-${reporter.component}` },
        reportingComponent: `castnet.io/${reporter.component}`,
        reportingInstance: reporter.instance,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    }),
  );
}

/** A token bucket per key: `burst` events at once, then one per `intervalMs`. */
export class EventLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  suppressed = 0;

  constructor(
    private readonly burst: number,
    private readonly intervalMs: number,
  ) {}

  allow(key: string, now: number): boolean {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    const tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.intervalMs);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      this.suppressed++;
      return false;
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    return true;
  }

  forget(key: string): void {
    this.buckets.delete(key);
  }
}
