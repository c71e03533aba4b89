// Two "node" namespaces on one veth underlay, IPv4 and IPv6; an agent socket in each.
import { waitFor } from '../base/async.js';
import { NetnsFixture } from '../../test/harness/netns-fixture.js';
import { Datagram, UnderlaySocket } from './udp.js';

const fx = new NetnsFixture('cnul');
let a: string;
let b: string;
const sockets: UnderlaySocket[] = [];

beforeAll(() => {
  a = fx.netns('a');
  b = fx.netns('b');
  fx.veth(a, 'ul0', b, 'ul0', '10.78.0.1/24', '10.78.0.2/24');
  fx.exec(a, 'ip', ['addr', 'add', 'fd78::1/64', 'dev', 'ul0', 'nodad']);
  fx.exec(b, 'ip', ['addr', 'add', 'fd78::2/64', 'dev', 'ul0', 'nodad']);
});

afterAll(() => {
  for (const s of sockets) s.dispose();
  fx.cleanup();
});

function open(ns: string, address: string, port = 0): UnderlaySocket {
  const s = UnderlaySocket.open({ address, port, netns: fx.path(ns) });
  sockets.push(s);
  return s;
}

describe.each([
  ['IPv4', '10.78.0.1', '10.78.0.2'],
  ['IPv6', 'fd78::1', 'fd78::2'],
])('underlay over %s', (_name, addrA, addrB) => {
  it('carries a batch larger than one syscall, intact and attributed to the sending agent', async () => {
    const sa = open(a, addrA);
    const sb = open(b, addrB, 0);
    expect(sb.port).toBeGreaterThan(0);
    const got: { from: string; data: string; known: boolean }[] = [];
    const fromA = sb.peer(addrA, sa.port);
    sb.onDatagrams((batch: Datagram[]) => {
      for (const d of batch)
        got.push({
          from: `${d.from.address}|${d.from.port}`,
          data: d.data.toString(),
          known: d.from === fromA,
        });
    });
    const toB = sa.peer(addrB, sb.port);
    const payloads = Array.from({ length: 300 }, (_, i) => `datagram-${i}`);
    expect(sa.send(payloads.map((p) => ({ to: toB, data: Buffer.from(p) })))).toBe(300);
    await waitFor(() => got.length >= 300, { what: '300 datagrams' });
    expect(got.map((g) => g.data)).toEqual(payloads);
    expect(new Set(got.map((g) => g.from))).toEqual(new Set([`${addrA}|${sa.port}`]));
    expect(got.every((g) => g.known)).toBe(true);
    expect(sa.counters()).toMatchObject({ sent: 300, sendDropped: 0, errors: 0 });
    expect(sb.counters()).toMatchObject({ received: 300, truncated: 0, errors: 0 });
  });

  it('sends one batch to several peers', async () => {
    const sa = open(a, addrA);
    const sb1 = open(b, addrB);
    const sb2 = open(b, addrB);
    const got: string[] = [];
    for (const s of [sb1, sb2])
      s.onDatagrams((batch) => batch.forEach((d) => got.push(`${s.port}:${d.data}`)));
    const p1 = sa.peer(addrB, sb1.port);
    const p2 = sa.peer(addrB, sb2.port);
    sa.send([
      { to: p1, data: Buffer.from('x') },
      { to: p2, data: Buffer.from('y') },
      { to: p1, data: Buffer.from('z') },
    ]);
    await waitFor(() => got.length >= 3, { what: '3 datagrams' });
    expect(got.sort()).toEqual([`${sb1.port}:x`, `${sb1.port}:z`, `${sb2.port}:y`].sort());
  });

  it('skips a datagram the kernel refuses, counts it as an error, and sends the rest', async () => {
    const sa = open(a, addrA);
    const sb = open(b, addrB);
    const got: string[] = [];
    sb.onDatagrams((batch) => batch.forEach((d) => got.push(d.data.toString())));
    const good = sa.peer(addrB, sb.port);
    const refused = sa.peer(addrB, 0); // UDP refuses destination port 0 (EINVAL)
    const sent = sa.send(
      ['a', 'x', 'b', 'y', 'c'].map((p, i) => ({ to: i % 2 ? refused : good, data: Buffer.from(p) })),
    );
    expect(sent).toBe(3);
    await waitFor(() => got.length >= 3, { what: '3 datagrams' });
    expect(got).toEqual(['a', 'b', 'c']);
    expect(sa.counters()).toMatchObject({ sent: 3, sendDropped: 0, errors: 2 });
  });
});

describe('interned peers', () => {
  it('are as many as the peers not forgotten, however many nodes came and went', () => {
    const s = open(a, '10.78.0.1');
    for (let round = 0; round < 5; round++) {
      const peers = Array.from({ length: 2000 }, (_, i) => s.peer(`10.79.${round}.${i % 250}`, 4790 + i));
      expect(s.internedPeers).toBe(2000);
      expect(s.peer(peers[7]!.address, peers[7]!.port)).toBe(peers[7]);
      for (const p of peers) s.forget(p);
      expect(s.internedPeers).toBe(0);
      expect(s.peer(peers[7]!.address, peers[7]!.port)).not.toBe(peers[7]);
      s.forget(s.peer(peers[7]!.address, peers[7]!.port));
    }
  });
});

describe('underlay input checks', () => {
  it('rejects bad addresses, ports and families with the field named', () => {
    expect(() => UnderlaySocket.open({ address: 'node-1', port: 1 })).toThrow(
      'underlay address "node-1": not an IPv4 or IPv6 address',
    );
    expect(() => UnderlaySocket.open({ address: '10.78.0.1', port: -1 })).toThrow(/underlay address port -1/);
    const s = open(a, '10.78.0.1');
    expect(() => s.peer('fd78::2', 1)).toThrow('peer address "fd78::2": not IPv4 like the underlay socket');
  });

  it('refuses a second socket on the same address and port (no silent sharing between agents)', () => {
    const first = open(b, '10.78.0.2');
    expect(() => UnderlaySocket.open({ address: '10.78.0.2', port: first.port, netns: fx.path(b) })).toThrow(
      new RegExp(`bind underlay 10\\.78\\.0\\.2:${first.port}: EADDRINUSE`),
    );
  });

  it('shares a wildcard port only between sockets that ask for it, each family apart', async () => {
    const shared = () => {
      const s = UnderlaySocket.open({
        address: '0.0.0.0',
        port: 47001,
        netns: fx.path(b),
        reuseAddress: true,
      });
      sockets.push(s);
      return s;
    };
    const [one, two] = [shared(), shared()];
    const v6 = UnderlaySocket.open({ address: '::', port: 47001, netns: fx.path(b), reuseAddress: true });
    sockets.push(v6);
    expect(() => UnderlaySocket.open({ address: '0.0.0.0', port: 47001, netns: fx.path(b) })).toThrow(
      /EADDRINUSE/,
    );
    // A broadcast reaches every socket sharing the port; the IPv6-only one gets nothing of it (its
    // own datagram, queued after where the broadcast would be, proves it would have seen it).
    const got: string[][] = [[], [], []];
    [one, two, v6].forEach((s, i) =>
      s.onDatagrams((batch) => batch.forEach((d) => got[i]!.push(d.data.toString()))),
    );
    fx.exec(a, 'socat', ['-u', 'STDIN', 'UDP4-DATAGRAM:10.78.0.255:47001,broadcast'], 'x');
    await waitFor(() => got[0]!.length + got[1]!.length === 2, {
      what: 'the broadcast at both IPv4 sockets',
    });
    const from = open(a, 'fd78::1');
    from.send([{ to: from.peer('fd78::2', 47001), data: Buffer.from('y') }]);
    await waitFor(() => got[2]!.includes('y'), { what: 'the IPv6 datagram' });
    expect(got).toEqual([['x'], ['x'], ['y']]);
  });

  it('fails to bind an address the namespace does not have, saying which', () => {
    expect(() => UnderlaySocket.open({ address: '10.78.9.9', port: 0, netns: fx.path(a) })).toThrow(
      /bind underlay 10\.78\.9\.9:0: EADDRNOTAVAIL/,
    );
  });
});
