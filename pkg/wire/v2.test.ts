// Wire format version 2: SipHash-2-4-128 against the reference vectors, the layout, pair keys and
// the replay window.
import fc from 'fast-check';
import {
  decodeData,
  decodeDataV2,
  derivePairKeys,
  encapsulate,
  encodeData,
  endpointMtu,
  generateNodeKeyPair,
  HEADER_V2_LEN,
  idsPerDatagram,
  parsePublicKey,
  REPLAY_WINDOW,
  ReplayWindow,
  SipKey,
  sipTag,
  TAG_V2_LEN,
  udpPayloadBudget,
  type DataMessage,
  type PairSeal,
  type SealInfo,
} from './index.js';
import { err, fieldError, ok } from '../frame/result.js';

// The reference implementation's vectors_sip128 (key 00..0f, message 00..len-1), lengths 0-3 and 63.
const VECTORS: Record<number, string> = {
  0: 'a3817f04ba25a8e66df67214c7550293',
  1: 'da87c1d86b99af44347659119b22fc45',
  2: '8177228da4a45dc7fca38bdef60affe4',
  3: '9c70b60c5267a94e5f33b6b02985ed51',
  63: '5150d1772f50834a503e069a973fbd7c',
};

const message = (n = 1): DataMessage => ({
  networkId: 0x123456,
  sourceEndpointId: 7,
  destinations: Array.from({ length: n }, (_, i) => 100 + i),
  vnetHeader: true,
  frame: Uint8Array.from({ length: 10 + 60 }, (_, i) => i),
});

function seal(key: SipKey, senderEpoch = 5, receiverEpoch = 9, from = 0): PairSeal {
  let seq = from;
  return { key, senderEpoch, receiverEpoch, nextSeq: () => seq++ };
}

const keyA = new SipKey(Buffer.alloc(16, 1));
const keyB = new SipKey(Buffer.alloc(16, 2));
const lookup = (rx: SipKey) => (info: SealInfo) =>
  info.senderEpoch === 5 && info.receiverEpoch === 9
    ? ok({ rx })
    : err(fieldError('unknown-key' as const, 'sender_epoch', 'not 5/9'));

describe('SipHash-2-4-128', () => {
  it('matches the reference vectors', () => {
    const key = new SipKey(Uint8Array.from({ length: 16 }, (_, i) => i));
    for (const [len, want] of Object.entries(VECTORS)) {
      const m = Uint8Array.from({ length: Number(len) }, (_, i) => i);
      const out = Buffer.alloc(16);
      sipTag(key, m, 0, m.length, out, 0);
      expect(out.toString('hex')).toBe(want);
    }
  });
});

describe('wire format version 2', () => {
  it('round-trips, with sequence number and epochs, and the tag covers every byte', () => {
    const b = encodeData(message(3), seal(keyA, 5, 9, 2 ** 40 + 3));
    expect(b.length).toBe(HEADER_V2_LEN + 12 + 70 + TAG_V2_LEN);
    expect(b[2]).toBe(2);
    const r = decodeDataV2(b, lookup(keyA));
    expect(r.ok && r.value.seal).toEqual({ senderEpoch: 5, receiverEpoch: 9, seq: 2 ** 40 + 3 });
    expect(r.ok && r.value.message.destinations).toEqual([100, 101, 102]);
    expect(r.ok && Array.from(r.value.message.frame)).toEqual(Array.from(message().frame));
    // Any flipped bit after the version byte fails: the header fields, the IDs, the frame, the tag.
    for (let i = 3; i < b.length; i++) {
      const bad = Buffer.from(b);
      bad[i] ^= 0x01;
      expect(decodeDataV2(bad, lookup(keyA)).ok).toBe(false);
    }
  });

  it('refuses another pair key, unknown epochs and version 1 decoding', () => {
    const b = encodeData(message(), seal(keyA));
    const wrong = decodeDataV2(b, lookup(keyB));
    expect(!wrong.ok && wrong.error.code).toBe('bad-tag');
    const other = decodeDataV2(encodeData(message(), seal(keyA, 6, 9)), lookup(keyA));
    expect(!other.ok && other.error.code).toBe('unknown-key');
    const v1 = decodeData(b);
    expect(!v1.ok && v1.error.code).toBe('bad-version');
    const asV2 = decodeDataV2(encodeData(message()), lookup(keyA));
    expect(!asV2.ok && asV2.error.code).toBe('bad-version');
  });

  it('never throws on truncated or random input', () => {
    const b = encodeData(message(2), seal(keyA));
    for (let n = 0; n < b.length; n++) expect(decodeDataV2(b.subarray(0, n), lookup(keyA)).ok).toBe(false);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const x = Buffer.from(bytes);
        if (x.length > 3) x.set([0x43, 0x4e, 2, 1]);
        expect(decodeDataV2(x, lookup(keyA)).ok).toBe(false);
      }),
    );
  });

  it('splits ID lists within the MTU with a fresh sequence number per datagram', () => {
    const budget = udpPayloadBudget(1500, 4);
    const mtu = endpointMtu(1500, { family: 4, auth: 'v2', vnetHeader: true });
    expect(mtu).toBe(1500 - 28 - 32 - 4 - 16 - 10 - 14);
    const frame = new Uint8Array(10 + 14 + 1000);
    const m = { ...message(), destinations: Array.from({ length: 300 }, (_, i) => i + 1), frame };
    const per = idsPerDatagram(budget, frame.length, 'v2');
    const r = encapsulate(m, budget, seal(keyA));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.length).toBe(Math.ceil(300 / per));
    const seqs = r.value.map((d) => {
      expect(d.length).toBeLessThanOrEqual(budget);
      const x = decodeDataV2(d, lookup(keyA));
      return x.ok ? x.value.seal.seq : -1;
    });
    expect(seqs).toEqual(seqs.map((_, i) => i));
  });
});

describe('pair keys', () => {
  it('agree between the two nodes, per direction, and differ between pairs and epochs', () => {
    const a = generateNodeKeyPair(1);
    const b = generateNodeKeyPair(1);
    const c = generateNodeKeyPair(1);
    const pub = (k: typeof a) => ({ epoch: k.epoch, publicKey: k.publicKey });
    const ab = derivePairKeys('a', a, 'b', pub(b));
    const ba = derivePairKeys('b', b, 'a', pub(a));
    const tag = (k: SipKey) => {
      const out = Buffer.alloc(16);
      sipTag(k, Buffer.from('x'), 0, 1, out, 0);
      return out.toString('hex');
    };
    expect(tag(ab.tx)).toBe(tag(ba.rx));
    expect(tag(ab.rx)).toBe(tag(ba.tx));
    expect(tag(ab.tx)).not.toBe(tag(ab.rx));
    // c cannot compute a's key with b, nor can the same keys under other names or epochs.
    const cb = derivePairKeys('c', c, 'b', pub(b));
    expect(tag(cb.tx)).not.toBe(tag(ab.tx));
    expect(tag(derivePairKeys('a', a, 'b', { ...pub(b), epoch: 2 }).tx)).not.toBe(tag(ab.tx));
    expect(tag(derivePairKeys('a2', a, 'b', pub(b)).tx)).not.toBe(tag(ab.tx));
  });

  it('parses only base64 of 32 bytes, and refuses low-order points', () => {
    const k = generateNodeKeyPair(1);
    expect(parsePublicKey(k.publicKey.toString('base64'))).toEqual(k.publicKey);
    expect(parsePublicKey('abc')).toBeInstanceOf(Error);
    expect(() => derivePairKeys('a', k, 'b', { epoch: 1, publicKey: Buffer.alloc(32) })).toThrow();
  });
});

describe('replay window', () => {
  it('accepts each number once, out of order within the window, and nothing older', () => {
    const w = new ReplayWindow();
    expect(w.admit(10)).toBe('ok');
    expect(w.admit(10)).toBe('replayed');
    expect(w.admit(3)).toBe('ok');
    expect(w.admit(3)).toBe('replayed');
    expect(w.admit(10 + REPLAY_WINDOW)).toBe('ok');
    expect(w.admit(10)).toBe('too-old');
    expect(w.admit(11)).toBe('ok');
    expect(w.admit(11)).toBe('replayed');
    expect(w.admit(2 ** 50)).toBe('ok');
    expect(w.admit(2 ** 50 - 1)).toBe('ok');
    expect(w.admit(2 ** 50 - 1)).toBe('replayed');
    expect(w.admit(11 + REPLAY_WINDOW)).toBe('too-old');
  });

  it('agrees with a set of seen numbers on any order', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 6000 }), { maxLength: 400 }), (seqs) => {
        const w = new ReplayWindow();
        const seen = new Set<number>();
        let top = -1;
        for (const s of seqs) {
          const want = s <= top - REPLAY_WINDOW ? 'too-old' : seen.has(s) ? 'replayed' : 'ok';
          expect(w.admit(s)).toBe(want);
          if (want === 'ok') {
            seen.add(s);
            top = Math.max(top, s);
          }
        }
      }),
    );
  });
});
