// The anti-replay window of wire format version 2 (as IPsec's, RFC 6479, and WireGuard's): a bitmap
// of the last REPLAY_WINDOW sequence numbers below the highest one seen. A number is accepted once;
// one older than the window is refused (it can no longer be told from a replay). Fixed memory
// (256 bytes) and bounded work per datagram, whatever the sender chooses.

export const REPLAY_WINDOW = 2048;
const WORDS = REPLAY_WINDOW / 32;

export type ReplayVerdict = 'ok' | 'replayed' | 'too-old';

export class ReplayWindow {
  private readonly bits = new Uint32Array(WORDS);
  /** The highest sequence number accepted; -1 before the first. */
  private top = -1;

  /**
   * Records `seq` (a safe integer, from a datagram whose tag verified) and says whether it is new.
   * Only call it after the tag verified, or a forger could move the window.
   */
  admit(seq: number): ReplayVerdict {
    if (seq > this.top) {
      // Clear the bits the window slides over (at most the whole bitmap), then mark seq.
      const gap = this.top < 0 ? REPLAY_WINDOW : seq - this.top;
      if (gap >= REPLAY_WINDOW) this.bits.fill(0);
      else for (let s = this.top + 1; s <= seq; s++) this.bits[word(s)] &= ~(1 << (s & 31));
      this.top = seq;
      this.bits[word(seq)] |= 1 << (seq & 31);
      return 'ok';
    }
    if (this.top - seq >= REPLAY_WINDOW) return 'too-old';
    const w = word(seq);
    const bit = 1 << (seq & 31);
    if (this.bits[w] & bit) return 'replayed';
    this.bits[w] |= bit;
    return 'ok';
  }
}

/** The bitmap word of `seq` (sequence numbers go beyond 32 bits, so no shifts on it). */
const word = (seq: number): number => Math.floor(seq / 32) % WORDS;
