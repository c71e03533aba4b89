// Two real probers on loopback addresses (127.0.0.1 and 127.0.0.2, one port), and a hostile
// sender: they find each other up, answer nothing from strangers or without the key, answer a
// flood of valid (replayed) probes at most at the budgeted rate and never with more bytes than they
// got, and report through onReport. MTU black holes need a real link MTU: test/lab/health.test.ts.
import { createSocket, type Socket } from 'node:dgram';
import { createLogger } from '../../log/log.js';
import type { UnderlayHealthReport } from '../../lookup/port.js';
import { makeWireKey } from '../../wire/index.js';
import { waitFor } from '../../base/async.js';
import { encodeProbe } from './probe.js';
import { UnderlayProber } from './prober.js';

const PORT = 20000 + (process.pid % 20000);
const key = makeWireKey(Buffer.alloc(32, 3));
const log = createLogger('health-test', () => undefined);
const nodes = [
  { name: 'a', address: '127.0.0.1' },
  { name: 'b', address: '127.0.0.2' },
];

let a: UnderlayProber;
let b: UnderlayProber;
let attacker: Socket | undefined;
const reports: UnderlayHealthReport[] = [];

beforeAll(async () => {
  const make = (n: (typeof nodes)[number]) =>
    new UnderlayProber({
      node: n.name,
      address: n.address,
      port: PORT,
      underlayMtu: 1500,
      key,
      intervalMs: 100,
      thresholds: { timeoutMs: 100 },
      onReport: (r) => void (n.name === 'a' && reports.push(r)),
      log,
    });
  a = make(nodes[0]!);
  b = make(nodes[1]!);
  a.setPeers(nodes);
  b.setPeers(nodes);
  await a.start();
  await b.start();
});

afterAll(async () => {
  attacker?.close();
  await a?.dispose();
  await b?.dispose();
});

it('finds its peer up with full-size probes, and reports the condition', async () => {
  const peer = await waitFor(() => a.snapshot().peers.find((p) => p.node === 'b' && p.status === 'up'), {
    what: "a's verdict on b",
  });
  expect(peer).toMatchObject({ address: '127.0.0.2', reachable: true, fullSize: true });
  expect(peer.rttMs).toBeGreaterThanOrEqual(0);
  expect(a.snapshot().probeBytes).toBe(1472);
  expect(reports.at(-1)?.condition).toMatchObject({ status: 'True', reason: 'AllPeersReachable' });
  const metrics = await a.metrics.metrics();
  expect(metrics).toContain('castnet_underlay_peer_reachable{peer="b"} 1');
  expect(metrics).toContain('castnet_underlay_peer_mtu_ok{peer="b"} 1');
  expect(metrics).toContain('castnet_underlay_peers{status="up"} 1');
});

it('drops and counts garbage, strangers and untagged probes without answering, and bounds replies to a flood', async () => {
  // From b's address but another port: a known peer's address, as a spoofer would use.
  attacker = createSocket('udp4');
  const replies: Buffer[] = [];
  attacker.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => attacker!.bind(0, '127.0.0.2', r));
  const stranger = createSocket('udp4');
  await new Promise<void>((r) => stranger.bind(0, '127.0.0.3', r));
  const send = (s: Socket, d: Buffer) =>
    new Promise<void>((r, j) => s.send(d, PORT, '127.0.0.1', (e) => (e ? j(e) : r())));
  const before = a.snapshot().counters;
  await send(stranger, encodeProbe(1, 1000, key));
  stranger.close();
  await send(attacker, Buffer.from('garbage that is not a probe'));
  await send(attacker, encodeProbe(2, 1000)); // no tag
  await send(attacker, encodeProbe(3, 1000, makeWireKey(Buffer.alloc(32, 4)))); // another key
  const flood = 100;
  const floodStart = Date.now();
  for (let i = 0; i < flood; i++) await send(attacker, encodeProbe(1000 + i, 64, key));
  const floodSeconds = Math.ceil((Date.now() - floodStart) / 1000);
  const dropped = (reason: keyof typeof before.dropped) =>
    (a.snapshot().counters.dropped[reason] ?? 0) - (before.dropped[reason] ?? 0);
  await waitFor(
    () =>
      dropped('unknown-peer') === 1 &&
      dropped('bad-magic') === 1 &&
      dropped('missing-tag') === 1 &&
      dropped('bad-tag') === 1 &&
      dropped('rate-limited') > 0,
    {
      what: 'the drops to be counted',
    },
  );
  // Every valid probe was either answered or dropped as over budget: none is lost uncounted.
  await waitFor(
    () => a.snapshot().counters.probesAnswered - before.probesAnswered + dropped('rate-limited') >= flood,
    { what: 'the flood to be answered or dropped' },
  );
  // The budget (10 a second per peer) is shared with b's own probes: the flood got at most 10 in
  // its first second and 10 more for each further second it lasted.
  expect(replies.length).toBeGreaterThan(0);
  expect(replies.length).toBeLessThanOrEqual(10 * (floodSeconds + 1));
  for (const r of replies) expect(r.length).toBeLessThanOrEqual(64);
  // b's own probes still get through, though from the same address.
  expect(a.snapshot().peers.find((p) => p.node === 'b')?.status).toBe('up');
  const metrics = await a.metrics.metrics();
  expect(metrics).toMatch(/castnet_underlay_probe_drops_total\{reason="unknown-peer"\} [1-9]/);
});

it('turns the peer down when it stops answering, and up again when it is back', async () => {
  await b.dispose();
  await waitFor(() => a.snapshot().peers.find((p) => p.node === 'b')?.status === 'down', {
    what: 'b to be down',
  });
  expect(reports.at(-1)?.condition).toEqual({
    status: 'False',
    reason: 'PeerUnreachable',
    message: 'unreachable: b',
  });
  b = new UnderlayProber({
    node: 'b',
    address: '127.0.0.2',
    port: PORT,
    underlayMtu: 1500,
    key,
    intervalMs: 100,
    log,
  });
  b.setPeers(nodes);
  await b.start();
  await waitFor(() => a.snapshot().peers.find((p) => p.node === 'b')?.status === 'up', {
    what: 'b to be up again',
  });
  expect(reports.at(-1)?.condition.status).toBe('True');
});
