// What one agent concludes about its underlay path to one peer, from probe outcomes alone: no
// sockets, no timers; the caller passes the time in. Each round sends a small probe (is the peer
// reachable, and how far) and a full-size one (does a datagram at the configured underlay MTU get
// through). A verdict flips only after `losses` consecutive failures or `replies` consecutive
// answers, so one lost datagram never reports a healthy path as broken.

export type PeerStatus = 'unknown' | 'up' | 'down' | 'mtu-blackhole';
export type ProbeSize = 'small' | 'full';

export interface HealthThresholds {
  /** A probe unanswered this long is lost. */
  timeoutMs: number;
  /** Consecutive lost probes of one size that turn its verdict bad. */
  losses: number;
  /** Consecutive answered probes of one size that turn a bad verdict good again. */
  replies: number;
}

export const DEFAULT_THRESHOLDS: HealthThresholds = { timeoutMs: 1000, losses: 3, replies: 2 };

/** One peer's path as the probes see it. */
export interface PeerView {
  node: string;
  status: PeerStatus;
  /** Small probes answered: undefined before the first verdict. */
  reachable?: boolean;
  /** Full-size probes answered: undefined before the first verdict. */
  fullSize?: boolean;
  /** Smoothed round-trip time of small probes (ms), once one was answered. */
  rttMs?: number;
  /** When `status` last changed (ms, the caller's clock). */
  since: number;
  /** Why the status is bad, for people. */
  detail?: string;
  sent: number;
  lost: number;
}

interface Verdict {
  good: boolean | undefined;
  lostInARow: number;
  answeredInARow: number;
  lastFailure?: string;
}

/** RFC 6298's smoothing factor for the round-trip time. */
const RTT_ALPHA = 1 / 8;

export class PeerState {
  private readonly outstanding = new Map<number, { size: ProbeSize; at: number }>();
  private readonly verdicts: Record<ProbeSize, Verdict> = {
    small: { good: undefined, lostInARow: 0, answeredInARow: 0 },
    full: { good: undefined, lostInARow: 0, answeredInARow: 0 },
  };
  private rtt: number | undefined;
  private status: PeerStatus = 'unknown';
  private since: number;
  private sentCount = 0;
  private lostCount = 0;

  constructor(
    readonly node: string,
    /** The full-size probe's length, named in the verdict. */
    private readonly fullSizeBytes: number,
    private readonly t: HealthThresholds,
    now: number,
  ) {
    this.since = now;
  }

  /** A probe left: it is answered by `replied(seq)` or lost by `expire` after the timeout. */
  probeSent(seq: number, size: ProbeSize, now: number): void {
    this.sentCount++;
    this.outstanding.set(seq, { size, at: now });
  }

  /** A sent probe could not even leave this node (EMSGSIZE: the local MTU is below its size). */
  sendFailed(seq: number, why: string, now: number): void {
    const p = this.outstanding.get(seq);
    if (!p) return;
    this.outstanding.delete(seq);
    this.lose(p.size, `not sent: ${why}`, now);
  }

  /** An authenticated reply: false when `seq` is not a probe in flight (late, or never sent). */
  replied(seq: number, now: number): boolean {
    const p = this.outstanding.get(seq);
    if (!p) return false;
    this.outstanding.delete(seq);
    if (p.size === 'small') {
      const sample = Math.max(0, now - p.at);
      this.rtt = this.rtt === undefined ? sample : this.rtt + RTT_ALPHA * (sample - this.rtt);
    }
    const v = this.verdicts[p.size];
    v.lostInARow = 0;
    v.answeredInARow++;
    if (v.good === undefined || (!v.good && v.answeredInARow >= this.t.replies)) {
      v.good = true;
      // Full-size probes lost while the peer was unreachable say nothing about the MTU: judge it
      // afresh, or every recovery would pass through a false black hole.
      if (p.size === 'small') this.verdicts.full = { good: undefined, lostInARow: 0, answeredInARow: 0 };
    }
    this.judge(now);
    return true;
  }

  /** Probes unanswered for the timeout are lost. */
  expire(now: number): void {
    for (const [seq, p] of this.outstanding) {
      if (now - p.at < this.t.timeoutMs) continue;
      this.outstanding.delete(seq);
      this.lose(p.size, `no reply within ${this.t.timeoutMs} ms`, now);
    }
  }

  view(): PeerView {
    const small = this.verdicts.small.good;
    const full = this.verdicts.full.good;
    return {
      node: this.node,
      status: this.status,
      ...(small !== undefined ? { reachable: small } : {}),
      ...(full !== undefined ? { fullSize: full } : {}),
      ...(this.rtt !== undefined ? { rttMs: Math.round(this.rtt * 1000) / 1000 } : {}),
      since: this.since,
      ...(this.status === 'down' || this.status === 'mtu-blackhole' ? { detail: this.detail() } : {}),
      sent: this.sentCount,
      lost: this.lostCount,
    };
  }

  private lose(size: ProbeSize, why: string, now: number): void {
    this.lostCount++;
    const v = this.verdicts[size];
    v.answeredInARow = 0;
    v.lostInARow++;
    v.lastFailure = why;
    if (v.good !== false && v.lostInARow >= this.t.losses) v.good = false;
    this.judge(now);
  }

  private judge(now: number): void {
    const small = this.verdicts.small.good;
    const full = this.verdicts.full.good;
    const next: PeerStatus =
      small === false ? 'down' : full === false ? 'mtu-blackhole' : small === true ? 'up' : 'unknown';
    if (next === this.status) return;
    this.status = next;
    this.since = now;
  }

  private detail(): string {
    const v = this.status === 'down' ? this.verdicts.small : this.verdicts.full;
    const what =
      this.status === 'down' ? 'probes' : `${this.fullSizeBytes}-byte probes (small ones are answered)`;
    return `${v.lostInARow} ${what} lost in a row, last: ${v.lastFailure ?? 'unknown'}`;
  }
}
