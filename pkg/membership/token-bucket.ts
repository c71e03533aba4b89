// A pure token bucket: `take(now)` spends one token if there is one. Time comes from the caller.

export interface RateLimit {
  /** Sustained rate, tokens per second. */
  perSecond: number;
  /** Bucket size: the burst allowed after a quiet period. */
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly limit: RateLimit,
    now: number,
  ) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) {
      throw new Error(
        `rate limit: perSecond must be > 0 and burst >= 1, got ${limit.perSecond}/${limit.burst}`,
      );
    }
    this.tokens = limit.burst;
    this.last = now;
  }

  /** Spends a token at time `now` (ms); false when the bucket is empty. */
  take(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(
        this.limit.burst,
        this.tokens + ((now - this.last) * this.limit.perSecond) / 1000,
      );
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
