// The pure parts of underlay health: the probe format, the per-peer verdicts under an injected
// clock, the condition and report, and the reply budget.
import fc from 'fast-check';
import { makeWireKey, type WireKey } from '../../wire/index.js';
import { DEFAULT_THRESHOLDS, PeerState, type PeerView } from './peer-state.js';
import { decodeProbeMessage, encodeProbe, encodeReply, minProbeLength, PROBE_HEADER_LEN } from './probe.js';
import { healthReport, ReplyBudget, shouldPublish, underlayCondition } from './summary.js';

const key = makeWireKey(Buffer.alloc(32, 7));
const otherKey = makeWireKey(Buffer.alloc(32, 8));

describe('probe format', () => {
  it('round-trips probes and replies of any size, and a reply is never larger than its probe', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.integer({ min: 28, max: 9000 }),
        fc.boolean(),
        (seq, size, auth) => {
          const k = auth ? key : undefined;
          const probe = encodeProbe(seq, size, k);
          expect(probe.length).toBe(size);
          const got = decodeProbeMessage(probe, k);
          expect(got).toEqual({ ok: true, value: { kind: 'probe', seq, probeLength: size } });
          const reply = encodeReply(got.ok ? got.value : { kind: 'probe', seq, probeLength: size }, k);
          expect(reply.length).toBeLessThanOrEqual(probe.length);
          expect(decodeProbeMessage(reply, k)).toEqual({
            ok: true,
            value: { kind: 'reply', seq, probeLength: size },
          });
        },
      ),
    );
  });

  it('refuses what a cluster with or without a key must not accept, naming the reason', () => {
    const code = (b: Uint8Array, k: WireKey | 'no key' = key) => {
      const r = decodeProbeMessage(b, k === 'no key' ? undefined : k);
      return r.ok ? 'ok' : r.error.code;
    };
    const good = encodeProbe(1, 200, key);
    expect(code(good)).toBe('ok');
    expect(code(good, otherKey)).toBe('bad-tag');
    expect(code(good, 'no key')).toBe('unexpected-tag');
    expect(code(encodeProbe(1, 200))).toBe('missing-tag');
    expect(code(good.subarray(0, 100))).toBe('bad-length'); // a fragment of a probe
    expect(code(Buffer.concat([good, Buffer.alloc(1)]))).toBe('bad-length');
    expect(code(good.subarray(0, 5))).toBe('truncated');
    const flipped = Buffer.from(good);
    flipped[11] ^= 1; // the seq: covered by the tag
    expect(code(flipped)).toBe('bad-tag');
    const magic = Buffer.from(good);
    magic[1] = 0x4e; // "CN": a data datagram
    expect(code(magic)).toBe('bad-magic');
    const version = Buffer.from(good);
    version[2] = 9;
    expect(code(version)).toBe('bad-version');
    const type = Buffer.from(good);
    type[3] = 3;
    expect(code(type)).toBe('bad-type');
    const flags = Buffer.from(good);
    flags[4] |= 0x80;
    expect(code(flags)).toBe('bad-flags');
    // A reply stretched to a probe's size is refused: replies are the bare header.
    const long = Buffer.alloc(200);
    encodeReply({ kind: 'probe', seq: 1, probeLength: 200 }, key).copy(long);
    expect(code(long)).toBe('bad-length');
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        expect(decodeProbeMessage(b, key).ok).toBe(false);
      }),
    );
  });

  it('sizes: the header, plus the tag when authenticated', () => {
    expect(minProbeLength(false)).toBe(PROBE_HEADER_LEN);
    expect(minProbeLength(true)).toBe(PROBE_HEADER_LEN + 16);
    expect(() => encodeProbe(1, 10, key)).toThrow('probe size 10: not in 28..65535');
  });
});

/** Drives a PeerState round by round, as the prober does, with a fake clock. */
class Rounds {
  now = 0;
  seq = 0;
  readonly s = new PeerState('node-b', 1472, DEFAULT_THRESHOLDS, 0);

  /** One round: expire, send both sizes, and answer those `answer` lets through after 1 ms. */
  round(answer: { small: boolean; full: boolean }): PeerView {
    this.s.expire(this.now);
    const small = ++this.seq;
    const full = ++this.seq;
    this.s.probeSent(small, 'small', this.now);
    this.s.probeSent(full, 'full', this.now);
    if (answer.small) this.s.replied(small, this.now + 1);
    if (answer.full) this.s.replied(full, this.now + 1);
    this.now += 1000;
    return this.s.view();
  }
}

describe('PeerState', () => {
  const ok = { small: true, full: true };
  const none = { small: false, full: false };
  const smallOnly = { small: true, full: false };

  it('is up after the first answers, with the round-trip time', () => {
    const r = new Rounds();
    expect(r.s.view().status).toBe('unknown');
    const v = r.round(ok);
    expect(v).toMatchObject({ status: 'up', reachable: true, fullSize: true, rttMs: 1, since: 1 });
  });

  it('turns down after three rounds without answers, not before, and up after two answered', () => {
    const r = new Rounds();
    r.round(ok);
    // Probes of a round are lost when the next round expires them.
    const statuses = [none, none, none, none, ok, ok, ok].map((a) => r.round(a).status);
    expect(statuses).toEqual(['up', 'up', 'up', 'down', 'down', 'up', 'up']);
    // No false MTU black hole on the way back: full-size losses while down do not count.
  });

  it('names an MTU black hole when only full-size probes are lost, and sees it recover', () => {
    const r = new Rounds();
    r.round(ok);
    const statuses = [smallOnly, smallOnly, smallOnly, smallOnly, ok, ok].map((a) => r.round(a).status);
    expect(statuses).toEqual(['up', 'up', 'up', 'mtu-blackhole', 'mtu-blackhole', 'up']);
    for (let i = 0; i < 3; i++) r.round(smallOnly);
    const v = r.round(smallOnly);
    expect(v.status).toBe('mtu-blackhole');
    expect(v.detail).toBe(
      '3 1472-byte probes (small ones are answered) lost in a row, last: no reply within 1000 ms',
    );
  });

  it('counts a probe that could not be sent as lost at once, with the error', () => {
    const s = new PeerState('node-b', 1472, DEFAULT_THRESHOLDS, 0);
    for (let i = 1; i <= 6; i += 2) {
      s.probeSent(i, 'small', i);
      s.replied(i, i);
      s.probeSent(i + 1, 'full', i);
      s.sendFailed(i + 1, 'send EMSGSIZE', i);
    }
    const v = s.view();
    expect(v).toMatchObject({ status: 'mtu-blackhole', sent: 6, lost: 3 });
    expect(v.detail).toContain('last: not sent: send EMSGSIZE');
  });

  it('ignores replies to probes it has no record of, and late ones', () => {
    const s = new PeerState('node-b', 1472, DEFAULT_THRESHOLDS, 0);
    expect(s.replied(42, 0)).toBe(false);
    s.probeSent(1, 'small', 0);
    s.expire(1000);
    expect(s.replied(1, 1001)).toBe(false);
    expect(s.view().lost).toBe(1);
  });

  it('smooths the round-trip time (RFC 6298, 1/8)', () => {
    const s = new PeerState('node-b', 1472, DEFAULT_THRESHOLDS, 0);
    s.probeSent(1, 'small', 0);
    s.replied(1, 8);
    s.probeSent(2, 'small', 100);
    s.replied(2, 116);
    expect(s.view().rttMs).toBe(9);
  });
});

const view = (node: string, status: PeerView['status'], extra: Partial<PeerView> = {}): PeerView => ({
  node,
  status,
  since: 0,
  sent: 0,
  lost: 0,
  ...extra,
});

describe('condition and report', () => {
  it('is False naming the unreachable and the black-holed peers, unreachable first', () => {
    const c = underlayCondition(
      [view('n3', 'mtu-blackhole'), view('n2', 'down'), view('n1', 'up'), view('n0', 'down')],
      1472,
    );
    expect(c).toEqual({
      status: 'False',
      reason: 'PeerUnreachable',
      message: 'unreachable: n0, n2; 1472-byte datagrams lost (MTU black hole): n3',
    });
    expect(underlayCondition([view('n3', 'mtu-blackhole'), view('n1', 'up')], 1472)).toMatchObject({
      status: 'False',
      reason: 'MTUBlackHole',
    });
  });

  it('is Unknown while probing, True when every peer is up, and bounded in length', () => {
    expect(underlayCondition([view('a', 'up'), view('b', 'unknown')], 1472)).toEqual({
      status: 'Unknown',
      reason: 'Probing',
      message: 'no verdict yet for: b',
    });
    expect(underlayCondition([view('a', 'up')], 1472)).toEqual({
      status: 'True',
      reason: 'AllPeersReachable',
      message: '1 peers reachable with 1472-byte datagrams',
    });
    expect(underlayCondition([], 1472).reason).toBe('NoPeers');
    const many = Array.from({ length: 500 }, (_, i) => view(`node-${String(i).padStart(3, '0')}`, 'down'));
    const m = underlayCondition(many, 1472).message;
    expect(m).toMatch(/node-019 and 480 more$/);
  });

  it('publishes when a verdict changes, and otherwise only to refresh', () => {
    const r1 = healthReport('a', 1472, [view('b', 'up', { rttMs: 0.4 })]);
    const r2 = healthReport('a', 1472, [view('b', 'up', { rttMs: 0.9 })]);
    const r3 = healthReport('a', 1472, [view('b', 'down', { rttMs: 0.9 })]);
    expect(r1.peers).toEqual([{ node: 'b', status: 'up', rttMs: 0.4, since: '1970-01-01T00:00:00.000Z' }]);
    expect(shouldPublish(undefined, r1, 0, 60_000)).toBe(true);
    expect(shouldPublish({ report: r1, at: 0 }, r2, 59_999, 60_000)).toBe(false);
    expect(shouldPublish({ report: r1, at: 0 }, r2, 60_000, 60_000)).toBe(true);
    expect(shouldPublish({ report: r1, at: 0 }, r3, 1, 60_000)).toBe(true);
  });
});

describe('ReplyBudget', () => {
  it('answers a peer at most N times a second, each peer on its own', () => {
    const b = new ReplyBudget(3);
    const taken = (peer: string, now: number) =>
      Array.from({ length: 5 }, () => b.take(peer, now)).filter(Boolean).length;
    expect(taken('a', 0)).toBe(3);
    expect(taken('b', 10)).toBe(3);
    expect(taken('a', 999)).toBe(0);
    expect(taken('a', 1000)).toBe(3);
  });
});
