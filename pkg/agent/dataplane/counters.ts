// Data-plane counters: totals plus drops by reason, so every frame not delivered is accounted for.

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
  };

  drop(reason: string, n = 1): void {
    this.c.drops[reason] = (this.c.drops[reason] ?? 0) + n;
  }

  snapshot(): DataplaneCounters {
    return { ...this.c, drops: { ...this.c.drops } };
  }
}
