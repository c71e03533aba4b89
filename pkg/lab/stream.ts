// A market-data-style stream's datagrams and what one member made of them. Pure: the sender stamps
// each payload (stampStream), each member feeds what its application read, with the time it read
// it, into a StreamTally, and summary() says what was lost, duplicated or reordered and how bursty
// the arrivals were. Used by test/workloads/stream.test.ts and bench/marketdata.ts.

/** Payload layout: send time (ns, u64 LE), the run's number (u32 LE), the sequence number (u32 LE). */
export const STREAM_HEADER_BYTES = 16;
const RUN_OFFSET = 8;
const SEQ_OFFSET = 12;

/** Writes the stream header into `payload` (at least STREAM_HEADER_BYTES long). */
export function stampStream(payload: Buffer, run: number, seq: number, sentNs: bigint): void {
  if (payload.length < STREAM_HEADER_BYTES)
    throw new Error(`stream payload: ${payload.length} bytes, need at least ${STREAM_HEADER_BYTES}`);
  payload.writeBigUInt64LE(sentNs, 0);
  payload.writeUInt32LE(run >>> 0, RUN_OFFSET);
  payload.writeUInt32LE(seq >>> 0, SEQ_OFFSET);
}

/** The run and sequence number of a stream payload, or undefined for anything shorter. */
export function readStream(payload: Buffer): { run: number; seq: number } | undefined {
  if (payload.length < STREAM_HEADER_BYTES) return undefined;
  return { run: payload.readUInt32LE(RUN_OFFSET), seq: payload.readUInt32LE(SEQ_OFFSET) };
}

export interface StreamSummary {
  sent: number;
  /** Distinct sequence numbers read. */
  received: number;
  lost: number;
  lossRatio: number;
  /** Copies beyond the first of a sequence number. */
  duplicates: number;
  /** Datagrams read after a higher sequence number. */
  reordered: number;
  /** Sequence numbers at or beyond `sent` (never sent in this run). */
  unexpected: number;
  /** Gaps between consecutive reads, µs: the 99th percentile and the largest. */
  gapP99Us: number | null;
  gapMaxUs: number | null;
  /** The most datagrams read within any 1 ms: a smooth 20,000/s stream gives 20. */
  maxPerMs: number;
}

/** One member's view of one run of the stream. */
export class StreamTally {
  private readonly seen: Uint8Array;
  private times = new Float64Array(1024);
  private reads = 0;
  private highest = -1;
  private duplicates = 0;
  private reordered = 0;
  private unexpected = 0;

  /** `capacity`: the most sequence numbers the run may send. */
  constructor(readonly capacity: number) {
    this.seen = new Uint8Array(capacity);
  }

  /** A datagram with sequence number `seq`, read at `atNs` (any monotonic clock, ns). */
  record(seq: number, atNs: number): void {
    if (this.reads === this.times.length) {
      const grown = new Float64Array(this.times.length * 2);
      grown.set(this.times);
      this.times = grown;
    }
    this.times[this.reads++] = atNs;
    if (seq >= this.capacity) {
      this.unexpected++;
      return;
    }
    if (this.seen[seq]) this.duplicates++;
    else this.seen[seq] = 1;
    if (seq < this.highest) this.reordered++;
    else this.highest = seq;
  }

  /** Datagrams read so far, duplicates included. */
  get count(): number {
    return this.reads;
  }

  summary(sent: number): StreamSummary {
    let received = 0;
    for (let i = 0; i < Math.min(sent, this.capacity); i++) received += this.seen[i]!;
    const times = this.times.subarray(0, this.reads);
    const gaps = new Float64Array(Math.max(0, times.length - 1));
    for (let i = 1; i < times.length; i++) gaps[i - 1] = (times[i]! - times[i - 1]!) / 1000;
    gaps.sort();
    let maxPerMs = 0;
    for (let lo = 0, hi = 0; hi < times.length; hi++) {
      while (times[hi]! - times[lo]! >= 1e6) lo++;
      maxPerMs = Math.max(maxPerMs, hi - lo + 1);
    }
    const lost = sent - received;
    return {
      sent,
      received,
      lost,
      lossRatio: sent ? lost / sent : 0,
      duplicates: this.duplicates,
      reordered: this.reordered,
      unexpected: this.unexpected,
      gapP99Us: gaps.length ? gaps[Math.min(gaps.length - 1, Math.floor(gaps.length * 0.99))]! : null,
      gapMaxUs: gaps.length ? gaps[gaps.length - 1]! : null,
      maxPerMs,
    };
  }
}
