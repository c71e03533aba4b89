// Two keyrings as two nodes see each other through the directory: sealing and opening, the switch to
// a rotated key, the grace period, and the bounds.
import { decodeDataV2, encodeData, type DataMessage } from '../../wire/index.js';
import type { NodeRecord } from '../../lookup/port.js';
import { Keyring } from './keyring.js';

const GRACE = 10_000;
let now = 1_700_000_000_000;
const clock = () => now;

const msg: DataMessage = {
  networkId: 1,
  sourceEndpointId: 1,
  destinations: [2],
  vnetHeader: false,
  frame: new Uint8Array(14),
};

function record(name: string, k: Keyring): NodeRecord {
  return { name, address: '10.0.0.1', port: 1, poolIndex: 0, wireVersion: 2, wireKey: k.advertised() };
}

/** a sends one datagram to b; what b's keyring says about it. */
function send(a: Keyring, b: Keyring): string {
  const seal = a.sealFor('b');
  if (!seal) return 'no seal';
  const d = encodeData(msg, seal);
  const r = decodeDataV2(d, (info) => b.open('a', info));
  if (!r.ok) return r.error.code;
  return b.admit(r.value.key, r.value.seal.seq);
}

it('seals, opens once, and follows a rotation through its grace period', () => {
  const a = new Keyring({ node: 'a', graceMs: GRACE, now: clock });
  const b = new Keyring({ node: 'b', graceMs: GRACE, now: clock });
  expect(a.sealFor('b')).toBeUndefined(); // b not advertised yet: version 1
  a.setPeers([record('a', a), record('b', b)]);
  b.setPeers([record('a', a), record('b', b)]);
  expect(a.speaksV2('b') && b.speaksV2('a')).toBe(true);
  expect(send(a, b)).toBe('ok');
  expect(send(a, b)).toBe('ok');

  // a rotates: until b has seen the new record, a keeps sealing with the old key.
  now += 1000;
  const oldEpoch = a.advertised().epoch;
  a.rotate();
  expect(a.advertised().epoch).toBeGreaterThan(oldEpoch);
  expect(a.sealFor('b')!.senderEpoch).toBe(oldEpoch);
  expect(send(a, b)).toBe('ok');
  b.setPeers([record('a', a), record('b', b)]);
  // b answers under a's new key, so a switches at once.
  const fromB = b.sealFor('a')!;
  expect(fromB.receiverEpoch).toBe(a.advertised().epoch);
  const back = decodeDataV2(encodeData(msg, fromB), (info) => a.open('b', info));
  expect(back.ok && a.admit(back.value.key, back.value.seal.seq)).toBe('ok');
  expect(a.sealFor('b')!.senderEpoch).toBe(a.advertised().epoch);
  expect(send(a, b)).toBe('ok');

  // After the grace period, a's old epoch is refused.
  now += GRACE + 1;
  b.setPeers([record('a', a), record('b', b)]);
  const stale = b.open('a', { senderEpoch: oldEpoch, receiverEpoch: b.advertised().epoch, seq: 99 });
  expect(!stale.ok && stale.error.code).toBe('stale-key');
  const unknown = b.open('a', { senderEpoch: oldEpoch + 1000, receiverEpoch: b.advertised().epoch, seq: 1 });
  expect(!unknown.ok && unknown.error.code).toBe('unknown-key');
  expect(send(a, b)).toBe('ok');
});

it('refuses a third node posing as another, and forgets nodes that leave', () => {
  const a = new Keyring({ node: 'a', graceMs: GRACE, now: clock });
  const b = new Keyring({ node: 'b', graceMs: GRACE, now: clock });
  const c = new Keyring({ node: 'c', graceMs: GRACE, now: clock });
  const all = [record('a', a), record('b', b), record('c', c)];
  for (const k of [a, b, c]) k.setPeers(all);
  // c seals for b with its own pair key but the datagram claims to come from a.
  const forged = encodeData(msg, { ...c.sealFor('b')!, senderEpoch: a.advertised().epoch, nextSeq: () => 0 });
  const r = decodeDataV2(forged, (info) => b.open('a', info));
  expect(!r.ok && r.error.code).toBe('bad-tag');
  b.setPeers([record('b', b)]);
  expect(b.speaksV2('a')).toBe(false);
  const gone = b.open('a', {
    senderEpoch: a.advertised().epoch,
    receiverEpoch: b.advertised().epoch,
    seq: 1,
  });
  expect(!gone.ok && gone.error.code).toBe('unknown-key');
});
