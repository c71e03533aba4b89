// SipHash-2-4 with 128-bit output (Aumasson and Bernstein; the reference implementation's outlen 16
// mode): the MAC of wire format version 2. Chosen because a tc BPF program can compute it too (64-bit
// adds, rotates and xors over the packet in a bounded loop), unlike AES or Poly1305 (see
// docs/wire-format.md "In the kernel"). 64-bit words are kept as two 32-bit halves, so V8 works on
// small integers only and nothing is allocated per message.

export const SIPHASH_KEY_LEN = 16;
export const SIPHASH_TAG_LEN = 16;

/** A 128-bit SipHash key, as the four little-endian 32-bit words the rounds start from. */
export class SipKey {
  readonly k0l: number;
  readonly k0h: number;
  readonly k1l: number;
  readonly k1h: number;

  constructor(key: Uint8Array) {
    if (key.length !== SIPHASH_KEY_LEN)
      throw new Error(`siphash key: ${key.length} bytes, need ${SIPHASH_KEY_LEN}`);
    const w = (i: number) => key[i] | (key[i + 1] << 8) | (key[i + 2] << 16) | (key[i + 3] << 24) | 0;
    this.k0l = w(0);
    this.k0h = w(4);
    this.k1l = w(8);
    this.k1h = w(12);
  }
}

/** The tag's four little-endian words, reused between calls (the caller copies or compares them). */
const words = new Int32Array(4);

/** SipHash-2-4-128 of b[start, end) into `words`. */
function sip(key: SipKey, b: Uint8Array, start: number, end: number): Int32Array {
  const len = end - start;
  // v0..v3 as (high, low) halves: "somepseudorandomlygeneratedbytes" xor the key.
  let v0h = 0x736f6d65 ^ key.k0h;
  let v0l = 0x70736575 ^ key.k0l;
  let v1h = 0x646f7261 ^ key.k1h;
  let v1l = 0x6e646f6d ^ key.k1l ^ 0xee; // 128-bit output
  let v2h = 0x6c796765 ^ key.k0h;
  let v2l = 0x6e657261 ^ key.k0l;
  let v3h = 0x74656462 ^ key.k1h;
  let v3l = 0x79746573 ^ key.k1l;
  const blocks = len >>> 3;
  let p = start;
  let block = 0;
  let mh = 0;
  let ml = 0;
  // phase 0: one message word per pass (2 rounds), the last one carrying the length; 1 and 2: the
  // two finalisations (4 rounds each), one per half of the tag.
  let phase = 0;
  for (;;) {
    let rounds = 4;
    if (phase === 0) {
      if (block < blocks) {
        ml = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
        mh = b[p + 4] | (b[p + 5] << 8) | (b[p + 6] << 16) | (b[p + 7] << 24);
        p += 8;
      } else {
        ml = 0;
        mh = (len & 0xff) << 24;
        const tail = end - p;
        for (let i = 0; i < tail; i++) {
          if (i < 4) ml |= b[p + i] << (8 * i);
          else mh |= b[p + i] << (8 * (i - 4));
        }
      }
      v3h ^= mh;
      v3l ^= ml;
      rounds = 2;
    }
    for (let r = 0; r < rounds; r++) {
      // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      let lo = (v0l + v1l) | 0;
      v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~lo)) >>> 31)) | 0;
      v0l = lo;
      let th = (v1h << 13) | (v1l >>> 19);
      let tl = (v1l << 13) | (v1h >>> 19);
      v1h = th ^ v0h;
      v1l = tl ^ v0l;
      let t = v0h;
      v0h = v0l;
      v0l = t;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      lo = (v2l + v3l) | 0;
      v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~lo)) >>> 31)) | 0;
      v2l = lo;
      th = (v3h << 16) | (v3l >>> 16);
      tl = (v3l << 16) | (v3h >>> 16);
      v3h = th ^ v2h;
      v3l = tl ^ v2l;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      lo = (v0l + v3l) | 0;
      v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~lo)) >>> 31)) | 0;
      v0l = lo;
      th = (v3h << 21) | (v3l >>> 11);
      tl = (v3l << 21) | (v3h >>> 11);
      v3h = th ^ v0h;
      v3l = tl ^ v0l;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      lo = (v2l + v1l) | 0;
      v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~lo)) >>> 31)) | 0;
      v2l = lo;
      th = (v1h << 17) | (v1l >>> 15);
      tl = (v1l << 17) | (v1h >>> 15);
      v1h = th ^ v2h;
      v1l = tl ^ v2l;
      t = v2h;
      v2h = v2l;
      v2l = t;
    }
    if (phase === 0) {
      v0h ^= mh;
      v0l ^= ml;
      if (block++ === blocks) {
        v2l ^= 0xee;
        phase = 1;
      }
    } else if (phase === 1) {
      words[0] = v0l ^ v1l ^ v2l ^ v3l;
      words[1] = v0h ^ v1h ^ v2h ^ v3h;
      v1l ^= 0xdd;
      phase = 2;
    } else {
      words[2] = v0l ^ v1l ^ v2l ^ v3l;
      words[3] = v0h ^ v1h ^ v2h ^ v3h;
      return words;
    }
  }
}

/** Writes SipHash-2-4-128(key, b[start, end)) to out[at, at + 16), little-endian as the reference does. */
export function sipTag(
  key: SipKey,
  b: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  at: number,
): void {
  const w = sip(key, b, start, end);
  for (let i = 0; i < 4; i++) {
    const x = w[i];
    out[at + 4 * i] = x;
    out[at + 4 * i + 1] = x >>> 8;
    out[at + 4 * i + 2] = x >>> 16;
    out[at + 4 * i + 3] = x >>> 24;
  }
}

/** Whether b[at, at + 16) is the tag of b[start, end); compares every byte whatever differs first. */
export function sipVerify(key: SipKey, b: Uint8Array, start: number, end: number, at: number): boolean {
  const w = sip(key, b, start, end);
  let diff = 0;
  for (let i = 0; i < 4; i++) {
    const got =
      b[at + 4 * i] | (b[at + 4 * i + 1] << 8) | (b[at + 4 * i + 2] << 16) | (b[at + 4 * i + 3] << 24);
    diff |= got ^ w[i];
  }
  return diff === 0;
}
