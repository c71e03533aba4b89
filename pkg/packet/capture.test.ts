// Real-kernel tests: a "node" namespace whose host-side veths lead to two "pod" namespaces; real
// socat processes in the pods send and receive.
import { UnderlaySocket } from '../underlay/udp.js';
import { CaptureSet, FrameBatch } from './capture.js';
import { waitFor } from '../base/async.js';
import { NetnsFixture, ip } from '../../test/harness/netns-fixture.js';
import { VNET_HDR_LEN } from '../frame/vnet.js';
import {
  EMPTY_VNET_HEADER,
  encodeVnetHeader,
  needsChecksum,
  parseVnetHeader,
} from '../../test/harness/vnet.js';

const fx = new NetnsFixture('cnpk');
let node: string;
let pod1: string;
let pod2: string;
let cap: CaptureSet<string>;
const seen: { tag: string; frame: Buffer }[] = [];

const POD1_MAC = '02:00:00:00:01:01';

beforeAll(() => {
  node = fx.netns('n');
  pod1 = fx.netns('p1');
  pod2 = fx.netns('p2');
  fx.veth(node, 'h1', pod1, 'eth0');
  fx.veth(node, 'h2', pod2, 'eth0');
  ip('-n', pod1, 'link', 'set', 'eth0', 'address', POD1_MAC);
  // Both pods sit on one virtual L2 segment; the node forwards between them only through us.
  ip('-n', pod1, 'addr', 'add', '10.77.0.1/24', 'dev', 'eth0');
  ip('-n', pod2, 'addr', 'add', '10.77.0.2/24', 'dev', 'eth0');
  for (const p of [pod1, pod2]) ip('-n', p, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
  cap = new CaptureSet<string>({ netns: fx.path(node) });
  cap.onFrames((b: FrameBatch<string>) => {
    for (const f of b.frames) seen.push({ tag: b.tag, frame: Buffer.from(f) });
  });
});

afterAll(() => {
  cap?.dispose();
  fx.cleanup();
});

beforeEach(() => {
  seen.length = 0;
});

function send(ns: string, dest: string, payload: string, extra = ''): void {
  fx.exec(ns, 'socat', ['-u', 'STDIN', `UDP4-DATAGRAM:${dest}${extra}`], payload);
}

/** The captured frames (after the vnet header) that carry `payload`. */
function framesWith(payload: string): { tag: string; frame: Buffer }[] {
  return seen.filter((s) => s.frame.includes(payload));
}

function dstMac(frame: Buffer): string {
  return [...frame.subarray(VNET_HDR_LEN, VNET_HDR_LEN + 6)]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join(':');
}

/** Sends a multicast marker from pod1 and waits until it is captured: everything before it is in. */
async function barrier(): Promise<void> {
  const marker = `marker-${Math.random()}`;
  send(pod1, '239.9.9.9:4000', marker);
  await waitFor(() => framesWith(marker).length > 0, { what: 'the marker frame' });
}

/** A real socat receiver joined to `group` in `ns`; resolves once the kernel shows the join. */
async function receiver(ns: string, group: string, port: number): Promise<{ out: () => string }> {
  const child = fx.spawn(ns, 'socat', [
    '-u',
    `UDP4-RECV:${port},ip-add-membership=${group}:eth0,reuseaddr`,
    'STDOUT',
  ]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => ip('-n', ns, 'maddr', 'show', 'dev', 'eth0').includes(group), {
    what: `socat in ${ns} to join ${group}`,
  });
  return { out: () => out };
}

describe('CaptureSet on real veths', () => {
  it('adds interfaces by name and rejects unknown ones with the name in the error', () => {
    expect(cap.add('h1', 'pod1')).toBeGreaterThan(0);
    expect(cap.add('h2', 'pod2')).toBeGreaterThan(0);
    expect(() => cap.add('nope0', 'x')).toThrow(/interface "nope0": not found/);
    expect([...cap.interfaces().values()].sort()).toEqual(['pod1', 'pod2']);
  });

  it('captures multicast and broadcast from a pod, tagged with its interface', async () => {
    send(pod1, '239.1.2.3:5000', 'hello-mcast');
    send(pod1, '10.77.0.255:5000', 'hello-bcast', ',broadcast');
    await waitFor(() => framesWith('hello-mcast').length > 0 && framesWith('hello-bcast').length > 0, {
      what: 'both frames',
    });
    const [m] = framesWith('hello-mcast');
    expect(m.tag).toBe('pod1');
    expect(dstMac(m.frame)).toBe('01:00:5e:01:02:03');
    expect(dstMac(framesWith('hello-bcast')[0].frame)).toBe('ff:ff:ff:ff:ff:ff');
  });

  it('keeps the VLAN tag of a tagged frame from a pod (a VM guest sends these)', async () => {
    // Sent raw out of pod1's eth0: the host side untags it into skb metadata on receive.
    const inPod = new CaptureSet<string>({ netns: fx.path(pod1) });
    try {
      const eth0 = inPod.add('eth0', 'pod1-side');
      const eth = Buffer.from('01005e0a0001' + POD1_MAC.replace(/:/g, '') + '8100' + '200a' + '88b5', 'hex');
      const frame = Buffer.concat([
        encodeVnetHeader(EMPTY_VNET_HEADER),
        eth,
        Buffer.from('tagged-frame'.padEnd(46)),
      ]);
      expect(inPod.inject(eth0, [frame])).toBe(1);
      await waitFor(() => framesWith('tagged-frame').length > 0, { what: 'the tagged frame' });
    } finally {
      inPod.dispose();
    }
    const [got] = framesWith('tagged-frame');
    // TPID 0x8100, PCP 1, VID 10, then the original EtherType.
    expect(got.frame.subarray(VNET_HDR_LEN + 12, VNET_HDR_LEN + 18).toString('hex')).toBe('8100200a88b5');
  });

  it('does not capture unicast', async () => {
    ip('-n', pod1, 'neigh', 'replace', '10.77.0.99', 'lladdr', '02:00:00:00:09:09', 'dev', 'eth0');
    send(pod1, '10.77.0.99:5000', 'hello-ucast');
    await barrier();
    expect(framesWith('hello-ucast')).toEqual([]);
  });

  it('delivers a captured frame with an unfinished checksum to a real socket in another pod', async () => {
    const rx = await receiver(pod2, '239.1.2.4', 5001);
    const h2 = cap.ifindexOf('h2');
    cap.onFrames((b) => {
      for (const f of b.frames) seen.push({ tag: b.tag, frame: Buffer.from(f) });
      if (b.tag !== 'pod1') return;
      // Control: the same kind of frame with its virtio_net_hdr cleared must not be delivered.
      const out = b.frames.map((f) =>
        f.includes('header-cleared')
          ? Buffer.concat([encodeVnetHeader(EMPTY_VNET_HEADER), f.subarray(VNET_HDR_LEN)])
          : f,
      );
      cap.inject(h2, out);
    });
    try {
      send(pod1, '239.1.2.4:5001', 'header-cleared');
      send(pod1, '239.1.2.4:5001', 'forwarded-payload');
      await waitFor(() => rx.out().includes('forwarded-payload'), {
        what: 'the receiver in pod2 to get the payload',
      });
    } finally {
      cap.onFrames((b) => {
        for (const f of b.frames) seen.push({ tag: b.tag, frame: Buffer.from(f) });
      });
    }
    // Both were injected in order into one queue, so the cleared one has been dropped by now.
    expect(rx.out()).not.toContain('header-cleared');
    // The real case: the veth left the UDP checksum to be finished, so the header had to travel.
    const [captured] = framesWith('forwarded-payload');
    const vnet = parseVnetHeader(captured.frame);
    expect(vnet.ok && needsChecksum(vnet.value)).toBe(true);
    expect(cap.interfaceCounters(h2)!.injected).toBeGreaterThan(0);
  });

  it('forwards a burst of several batches between pods without loss', async () => {
    ip('-n', pod2, 'addr', 'add', '239.1.2.6/32', 'dev', 'eth0', 'autojoin');
    const rx = UnderlaySocket.open({ address: '239.1.2.6', port: 5003, netns: fx.path(pod2) });
    const tx = UnderlaySocket.open({ address: '10.77.0.1', port: 0, netns: fx.path(pod1) });
    const got = new Set<string>();
    rx.onDatagrams((batch) => batch.forEach((d) => got.add(d.data.toString())));
    const h2 = cap.ifindexOf('h2');
    // Per-frame decisions, queued per target: the set flushes after the handler, one sendmmsg run.
    cap.onFrames((b) => {
      if (b.tag === 'pod1') for (const f of b.frames) cap.queue(h2, f);
    });
    try {
      const to = tx.peer('239.1.2.6', 5003);
      const burst = Array.from({ length: 500 }, (_, i) => ({ to, data: Buffer.from(`burst-${i}`) }));
      expect(tx.send(burst)).toBe(500);
      await waitFor(() => got.size === 500, { what: 'all 500 datagrams in pod2' });
    } finally {
      rx.dispose();
      tx.dispose();
      cap.onFrames((b) => {
        for (const f of b.frames) seen.push({ tag: b.tag, frame: Buffer.from(f) });
      });
    }
    expect(cap.counters()).toMatchObject({ dropped: 0, injectDropped: 0, errors: 0 });
  });

  it('counts the frames the kernel dropped while the agent was not reading', async () => {
    // A second set with a small queue, beside the main one: both sockets see pod1's frames.
    const small = new CaptureSet<string>({ netns: fx.path(node), rcvbuf: 256 << 10 });
    const h1 = small.add('h1', 'pod1');
    const tx = UnderlaySocket.open({ address: '10.77.0.1', port: 0, netns: fx.path(pod1) });
    try {
      const to = tx.peer('239.1.2.8', 5005);
      const burst = Array.from({ length: 5000 }, () => ({ to, data: Buffer.alloc(100) }));
      // One synchronous call: this thread cannot drain the capture socket meanwhile.
      expect(tx.send(burst)).toBe(5000);
      let received = -1;
      await waitFor(
        () => {
          const settled = small.counters().received === received;
          received = small.counters().received;
          return settled;
        },
        { what: 'the queue to drain' },
      );
      const c = small.interfaceCounters(h1)!;
      expect(c.dropped).toBeGreaterThan(0);
      expect(c.received + c.dropped).toBeGreaterThanOrEqual(5000);
    } finally {
      tx.dispose();
      small.dispose();
    }
  });

  it('sends frames queued outside a handler at flush', async () => {
    const rx = await receiver(pod1, '239.1.2.7', 5004);
    const h1 = cap.ifindexOf('h1');
    // Capture one real frame from pod2 to reuse, as an underlay handler would hand one over.
    send(pod2, '239.1.2.7:5004', 'queued-frame');
    await waitFor(() => framesWith('queued-frame').length > 0, { what: 'the frame from pod2' });
    const before = cap.interfaceCounters(h1)!.injected;
    cap.queue(h1, framesWith('queued-frame')[0].frame);
    expect(cap.interfaceCounters(h1)!.injected).toBe(before); // queued, not sent
    expect(cap.flush()).toBe(1);
    expect(cap.flush()).toBe(0);
    await waitFor(() => rx.out().includes('queued-frame'), { what: 'the queued frame in pod1' });
    expect(() => cap.queue(9999, Buffer.alloc(64))).toThrow(/ifindex 9999: interface not in the capture set/);
  });

  it('does not capture frames going out to the pod: its own injections or the node stack', async () => {
    const h1 = cap.ifindexOf('h1');
    // Sent by the node's own stack out of h1 (PACKET_IGNORE_OUTGOING keeps it out).
    send(node, '255.255.255.255:5000', 'node-stack-out', ',broadcast,so-bindtodevice=h1');
    // A broadcast frame towards pod1, as the agent would deliver from elsewhere.
    const eth = Buffer.alloc(60);
    Buffer.from('ffffffffffff020000000202', 'hex').copy(eth, 0);
    eth.writeUInt16BE(0x88b5, 12); // local experimental ethertype
    eth.write('injected-by-us', 14);
    expect(cap.inject(h1, [Buffer.concat([encodeVnetHeader(EMPTY_VNET_HEADER), eth])])).toBe(1);
    await barrier();
    expect(framesWith('injected-by-us')).toEqual([]);
    expect(framesWith('node-stack-out')).toEqual([]);
  });

  it('removes and re-adds an interface at runtime', async () => {
    expect(cap.remove('h1')).toBe(true);
    expect(cap.remove('h1')).toBe(false);
    send(pod1, '239.1.2.3:5000', 'while-removed');
    // pod2 is still captured: its frame proves the set kept working meanwhile.
    send(pod2, '239.1.2.3:5000', 'from-pod2');
    await waitFor(() => framesWith('from-pod2').length > 0, { what: 'pod2 frame' });
    expect(framesWith('while-removed')).toEqual([]);
    cap.add('h1', 'pod1-again');
    send(pod1, '239.1.2.3:5000', 'after-readd');
    await waitFor(() => framesWith('after-readd').length > 0, { what: 'frame after re-add' });
    expect(framesWith('after-readd')[0].tag).toBe('pod1-again');
  });

  it('lets a handler remove its own interface', async () => {
    const h1 = cap.ifindexOf('h1');
    cap.onFrames((b) => {
      for (const f of b.frames) seen.push({ tag: b.tag, frame: Buffer.from(f) });
      if (b.frames.some((f) => f.includes('remove-me'))) cap.remove(b.ifindex);
    });
    try {
      send(pod1, '239.1.2.3:5000', 'remove-me');
      await waitFor(() => !cap.has(h1), { what: 'the handler to remove h1' });
      send(pod2, '239.1.2.3:5000', 'still-alive');
      await waitFor(() => framesWith('still-alive').length > 0, { what: 'pod2 frame after the removal' });
    } finally {
      cap.onFrames((b) => {
        for (const f of b.frames) seen.push({ tag: b.tag, frame: Buffer.from(f) });
      });
      cap.add('h1', 'pod1');
    }
  });

  it('survives an interface deleted under it and keeps totals', async () => {
    const pod3 = fx.netns('p3');
    fx.veth(node, 'h3', pod3, 'eth0');
    const h3 = cap.add('h3', 'pod3');
    ip('-n', node, 'link', 'del', 'h3');
    await barrier(); // the event loop and the other sockets carry on
    const before = cap.counters().received;
    expect(cap.remove(h3)).toBe(true);
    expect(cap.counters().received).toBe(before);
    expect(() => cap.inject(h3, [Buffer.alloc(64)])).toThrow(/not in the capture set/);
  });
});
