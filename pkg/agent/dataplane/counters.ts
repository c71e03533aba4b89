// Data-plane counters: totals plus drops by reason, so every frame not delivered is accounted for.
import type { PolicedKind } from './policer.js';

export interface DataplaneCounters {
  framesCaptured: number;
  localDeliveries: number;
  datagramsSent: number;
  datagramsReceived: number;
  /** Delivered datagrams that were sealed with a version 2 pair key. */
  datagramsAuthenticated: number;
  remoteDeliveries: number;
  arpReplies: number;
  membershipMessages: number;
  drops: Record<string, number>;
  /**
   * Frames over an endpoint's rate limits, by local endpoint ID and kind (also in `drops` as
   * `policed:<kind>`). An endpoint's entry goes when the endpoint does: bounded by the node's endpoints.
   */
  policed: Record<string, Partial<Record<PolicedKind, number>>>;
}

export class Counters {
  readonly c: DataplaneCounters = {
    framesCaptured: 0,
    localDeliveries: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    datagramsAuthenticated: 0,
    remoteDeliveries: 0,
    arpReplies: 0,
    membershipMessages: 0,
    drops: {},
    policed: {},
  };

  drop(reason: string, n = 1): void {
    this.c.drops[reason] = (this.c.drops[reason] ?? 0) + n;
  }

  policed(endpointId: number, kind: PolicedKind): void {
    this.drop(`policed:${kind}`);
    const e = (this.c.policed[endpointId] ??= {});
    e[kind] = (e[kind] ?? 0) + 1;
  }

  forget(endpointId: number): void {
    delete this.c.policed[endpointId];
  }

  snapshot(): DataplaneCounters {
    const policed = Object.fromEntries(Object.entries(this.c.policed).map(([id, k]) => [id, { ...k }]));
    return { ...this.c, drops: { ...this.c.drops }, policed };
  }
}
