import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import {
  computeTag,
  decodeData,
  encapsulate,
  encodeData,
  endpointMtu,
  HEADER_LEN,
  makeWireKey,
  TAG_LEN,
  udpPayloadBudget,
  type DataMessage,
} from './index.js';

const key = makeWireKey(Buffer.alloc(32, 7));
const otherKey = makeWireKey(Buffer.alloc(32, 8));

const message: fc.Arbitrary<DataMessage> = fc
  .record({
    networkId: fc.integer({ min: 0, max: 0xffffff }),
    sourceEndpointId: fc.nat({ max: 0xffffffff }),
    destinations: fc.array(fc.nat({ max: 0xffffffff }), { minLength: 1, maxLength: 40 }),
    vnetHeader: fc.boolean(),
    body: fc.uint8Array({ minLength: 14, maxLength: 300 }),
  })
  .map(({ body, vnetHeader, ...rest }) => ({
    ...rest,
    vnetHeader,
    frame: vnetHeader ? Uint8Array.from([...new Uint8Array(10), ...body]) : body,
  }));

const plain = (m: DataMessage) => ({ ...m, frame: Array.from(m.frame) });

describe('wire format', () => {
  it('decode(encode(m)) == m, with and without a key', () => {
    fc.assert(
      fc.property(message, fc.boolean(), (m, auth) => {
        const b = encodeData(m, auth ? key : undefined);
        const r = decodeData(b, auth ? [key] : []);
        expect(r.ok).toBe(true);
        if (r.ok) expect(plain(r.value)).toEqual(plain(m));
      }),
    );
  });

  it('lays out the header as documented', () => {
    const b = encodeData(
      {
        networkId: 0x010203,
        sourceEndpointId: 9,
        destinations: [5, 6],
        vnetHeader: false,
        frame: new Uint8Array(14),
      },
      key,
    );
    expect([...b.subarray(0, HEADER_LEN)]).toEqual([0x43, 0x4e, 1, 1, 2, 1, 2, 3, 0, 0, 0, 9, 0, 2, 0, 14]);
    expect([...b.subarray(16, 24)]).toEqual([0, 0, 0, 5, 0, 0, 0, 6]);
    expect(b.length).toBe(HEADER_LEN + 8 + 14 + TAG_LEN);
  });

  it('accepts any of several keys (rotation) and refuses the wrong one or a missing tag', () => {
    const m: DataMessage = {
      networkId: 1,
      sourceEndpointId: 1,
      destinations: [1],
      vnetHeader: false,
      frame: new Uint8Array(20),
    };
    expect(decodeData(encodeData(m, key), [otherKey, key]).ok).toBe(true);
    const wrong = decodeData(encodeData(m, key), [otherKey]);
    expect(!wrong.ok && wrong.error.code).toBe('bad-tag');
    const missing = decodeData(encodeData(m), [key]);
    expect(!missing.ok && missing.error.code).toBe('missing-tag');
    const unexpected = decodeData(encodeData(m, key));
    expect(!unexpected.ok && unexpected.error.code).toBe('unexpected-tag');
  });

  it('names the field for each kind of malformed header', () => {
    const good = encodeData({
      networkId: 1,
      sourceEndpointId: 1,
      destinations: [1],
      vnetHeader: true,
      frame: new Uint8Array(30),
    });
    const mutate = (i: number, v: number) => {
      const c = Buffer.from(good);
      c[i] = v;
      const r = decodeData(c);
      return r.ok ? 'ok' : `${r.error.code}@${r.error.field}`;
    };
    expect(mutate(0, 0)).toBe('bad-magic@magic');
    expect(mutate(2, 2)).toBe('bad-version@version');
    expect(mutate(3, 9)).toBe('bad-type@type');
    expect(mutate(4, 0x80)).toBe('bad-flags@flags');
    expect(mutate(13, 0)).toBe('bad-count@destination_count');
    expect(mutate(15, 20)).toBe('bad-length@frame_length');
    expect(mutate(15, 31)).toBe('truncated@datagram');
    expect(mutate(15, 29)).toBe('trailing-bytes@datagram');
    const extra = decodeData(Buffer.concat([good, Buffer.of(0)]));
    expect(!extra.ok && extra.error.code).toBe('trailing-bytes');
  });

  it('rejects every truncation', () => {
    fc.assert(
      fc.property(message, fc.boolean(), (m, auth) => {
        const b = encodeData(m, auth ? key : undefined);
        for (let n = 0; n < b.length; n++)
          expect(decodeData(b.subarray(0, n), auth ? [key] : []).ok).toBe(false);
      }),
      { numRuns: 30 },
    );
  });

  it('never throws on arbitrary bytes, and a decoded datagram re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (b) => {
        const r = decodeData(b);
        if (r.ok) expect(Buffer.compare(encodeData(r.value), Buffer.from(b))).toBe(0);
      }),
      { numRuns: 5000 },
    );
  });

  it('a mutated authenticated datagram never decodes', () => {
    fc.assert(
      fc.property(
        message,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        (m, muts) => {
          const b = encodeData(m, key);
          for (const [i, x] of muts) b[i % b.length] ^= x;
          const r = decodeData(b, [key]);
          if (r.ok) expect(plain(r.value)).toEqual(plain(m)); // only possible if the xors cancelled out
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('tag', () => {
  it('is HMAC-SHA256 truncated to 16 bytes, for any key length and message', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 100 }),
        fc.uint8Array({ maxLength: 3000 }),
        (secret, msg) => {
          const want = createHmac('sha256', secret).update(msg).digest().subarray(0, 16);
          expect(computeTag(makeWireKey(secret), msg, msg.length).equals(want)).toBe(true);
        },
      ),
    );
    expect(() => makeWireKey(new Uint8Array(15))).toThrow(/too short/);
  });
});

describe('MTU', () => {
  const frame = (n: number) => new Uint8Array(n);
  it('an endpoint MTU leaves room for a full frame plus one ID', () => {
    for (const family of [4, 6] as const) {
      for (const auth of [false, true]) {
        const mtu = endpointMtu(1500, { family, auth, vnetHeader: true });
        const m: DataMessage = {
          networkId: 1,
          sourceEndpointId: 1,
          destinations: [1],
          vnetHeader: true,
          frame: frame(10 + 14 + mtu),
        };
        const r = encapsulate(m, udpPayloadBudget(1500, family), auth ? key : undefined);
        expect(r.ok && r.value.map((d) => d.length)).toEqual([udpPayloadBudget(1500, family)]);
        const tooBig = encapsulate(
          { ...m, frame: frame(11 + 14 + mtu) },
          udpPayloadBudget(1500, family),
          auth ? key : undefined,
        );
        expect(!tooBig.ok && tooBig.error.code).toBe('frame-too-large');
      }
    }
    expect(endpointMtu(1500, { family: 4, auth: true, vnetHeader: true })).toBe(
      1500 - 28 - 16 - 4 - 16 - 10 - 14,
    );
  });

  it('splits a long ID list over the fewest datagrams, each within budget, every ID exactly once, whole frame in each', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 14, max: 1400 }),
        fc.uniqueArray(fc.nat({ max: 0xffffffff }), { minLength: 1, maxLength: 500 }),
        fc.integer({ min: 576, max: 9000 }),
        (frameLen, ids, budget) => {
          const m: DataMessage = {
            networkId: 3,
            sourceEndpointId: 4,
            destinations: ids,
            vnetHeader: false,
            frame: frame(frameLen).fill(9),
          };
          const r = encapsulate(m, budget, key);
          if (frameLen + HEADER_LEN + 4 + TAG_LEN > budget) {
            expect(!r.ok && r.error.code).toBe('frame-too-large');
            return;
          }
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          const perDatagram = Math.floor((budget - HEADER_LEN - TAG_LEN - frameLen) / 4);
          expect(r.value.length).toBe(Math.ceil(ids.length / perDatagram));
          const seen: number[] = [];
          for (const d of r.value) {
            expect(d.length).toBeLessThanOrEqual(budget);
            const dm = decodeData(d, [key]);
            expect(dm.ok).toBe(true);
            if (dm.ok) {
              expect(dm.value.frame.length).toBe(frameLen);
              seen.push(...dm.value.destinations);
            }
          }
          expect(seen).toEqual(ids);
        },
      ),
      { numRuns: 300 },
    );
  });
});
