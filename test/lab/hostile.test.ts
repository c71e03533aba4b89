// The receive path under hostile input, on a real two-node lab: datagrams from strangers, for
// other networks or unknown endpoints, truncated or random bytes, missing or wrong authentication
// tags, and spoofed frames from a pod. None may deliver anything; each is counted; the agent keeps
// delivering good traffic afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildIPv4Frame } from '../../pkg/frame/build.js';
import { ipv4MulticastMac, formatMac, parseIPv4 } from '../../pkg/netaddr/address.js';
import type { Lab } from '../../pkg/lab/runner.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import { runIn } from '../../pkg/sys/exec.js';
import { encodeData, makeWireKey, type WireKey } from '../../pkg/wire/index.js';
import { waitFor } from '../../pkg/base/async.js';
import { useLab } from '../harness/lab-fixture.js';
import {
  arrived,
  drops,
  dropTotal,
  groupFrame,
  injectFrames,
  sendDatagrams,
  withVnet,
} from '../harness/underlay.js';

const GROUP = '239.5.5.5';
const KEY_HEX = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

const labFile = parseLabFile(`
nodes: 2
networks:
  - { name: blue, id: 100, subnets: [10.30.0.0/16] }
  - { name: red, id: 200, subnets: [10.31.0.0/16] }
pods:
  - { name: a1, node: 0, network: blue }
  - { name: b1, node: 1, network: blue }
  - { name: r1, node: 1, network: red }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`);

const udpFrame = (src: { mac: string; ip: string }, token: string) => groupFrame(GROUP, src, token);

function describeLab(
  name: string,
  agentArgs: string[],
  body: (ctx: { lab: () => Lab; key?: WireKey }) => void,
) {
  describe(name, () => {
    const { lab } = useLab(labFile, { agentArgs });
    beforeAll(async () => {
      await lab().joinGroup('b1', GROUP);
      await lab().joinGroup('r1', GROUP);
    }, 60000);
    const keyed = agentArgs.includes('--wire-key-file');
    body({ lab, key: keyed ? makeWireKey(Buffer.from(KEY_HEX, 'hex')) : undefined });
  });
}

// Version 1 behaviour (--wire-version 1): the datagrams here are unauthenticated or carry the cluster
// key's tag, which a version 2 node refuses from a version 2 peer (hostile-underlay-auth.test.ts).
describeLab('receive path in wire format version 1, without a key', ['--wire-version', '1'], ({ lab }) => {
  it('drops malformed and flooding IGMP reports, counts them, and keeps serving', async () => {
    const a1 = lab().podInfo('a1');
    // IGMPv2 reports from a1's own addresses (so anti-spoofing lets them through): a burst of good
    // ones beyond the rate limit, plus a bad checksum and a truncated message.
    const report = (group: string, badChecksum = false, truncate = false) => {
      const igmp = Buffer.alloc(8);
      igmp[0] = 0x16;
      Buffer.from(parseIPv4(group)!).copy(igmp, 4);
      let sum = 0;
      for (let i = 0; i < 8; i += 2) sum += igmp.readUInt16BE(i);
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
      igmp.writeUInt16BE((~sum & 0xffff) ^ (badChecksum ? 1 : 0), 2);
      return buildIPv4Frame({
        dstMac: formatMac(ipv4MulticastMac(parseIPv4(group)!)),
        srcMac: a1.mac,
        src: a1.ip,
        dst: group,
        protocol: 2,
        ttl: 1,
        routerAlert: true,
        payload: truncate ? igmp.subarray(0, 5) : igmp,
      });
    };
    const frames = [
      ...Array.from({ length: 100 }, (_, i) => report(`239.44.0.${i + 1}`)),
      report('239.45.0.1', true),
      report('239.45.0.2', false, true),
    ];
    await injectFrames(a1.ns, frames);
    const membershipDrops = async () =>
      ((await lab().agentStats(0)) as { membership: { drops: Record<string, number> } }).membership.drops;
    // The two bad reports are the last frames injected: once both are counted, so is the burst.
    const stats = await waitFor(
      async () => {
        const d = await membershipDrops();
        const malformed = Object.entries(d).filter(([k]) => k.startsWith('malformed:'));
        return malformed.reduce((n, [, v]) => n + v, 0) >= 2 ? d : undefined;
      },
      { what: 'the two malformed reports to be counted' },
    );
    expect(stats['rate-limited']).toBeGreaterThan(0);
    // Still serving: a good datagram is delivered, once (a second datagram after it is the control).
    const token = await lab().sendTo('a1', GROUP);
    await arrived(lab(), 'b1', await lab().sendTo('a1', GROUP));
    expect(lab().receivedBy('b1', token)).toBe(1);
  });

  function datagram(token: string, o: { networkId?: number; ids?: number[] } = {}): Uint8Array {
    const a1 = lab().podInfo('a1');
    const b1 = lab().podInfo('b1');
    return encodeData({
      networkId: o.networkId ?? 100,
      sourceEndpointId: a1.endpointId,
      destinations: o.ids ?? [b1.endpointId],
      vnetHeader: true,
      frame: withVnet(udpFrame(a1, token)),
    });
  }

  /**
   * Positive controls, sent after the datagrams under test from the same socket: one for b1 (blue)
   * and one for r1 (red), with tokens of their own. The agent handles datagrams in order, so once both
   * controls are in the pods' captures, everything sent before them has been delivered or dropped
   * (and counted).
   */
  function controls(): { datagrams: Uint8Array[]; arrived: () => Promise<void> } {
    const r1 = lab().podInfo('r1');
    const tokens = {
      b1: `ctl-${randomBytes(6).toString('hex')}`,
      r1: `ctl-${randomBytes(6).toString('hex')}`,
    };
    return {
      datagrams: [datagram(tokens.b1), datagram(tokens.r1, { networkId: 200, ids: [r1.endpointId] })],
      arrived: async () => {
        expect(await arrived(lab(), 'b1', tokens.b1)).toBe(1);
        expect(await arrived(lab(), 'r1', tokens.r1)).toBe(1);
      },
    };
  }

  it('delivers a well-formed datagram from a known node exactly once (the harness works)', async () => {
    const n0 = lab().topology.nodes[0]!;
    const n1 = lab().topology.nodes[1]!;
    const token = `good-${Date.now()}`;
    const control = controls();
    await sendDatagrams(n0.ns, n0.address, n1.address, [datagram(token), ...control.datagrams]);
    await control.arrived();
    expect(lab().receivedBy('b1', token)).toBe(1);
    expect(lab().receivedBy('r1', token)).toBe(0);
  });

  // Datagrams from an unknown address: the agent's nftables filter drops them before its socket
  // (test/lab/hostile-identity.test.ts).

  it('drops datagrams for another network, an unknown network or unknown endpoint IDs', async () => {
    const n0 = lab().topology.nodes[0]!;
    const n1 = lab().topology.nodes[1]!;
    const b1 = lab().podInfo('b1');
    const token = `misaddressed-${Date.now()}`;
    const before = await drops(lab(), 1);
    const control = controls();
    await sendDatagrams(n0.ns, n0.address, n1.address, [
      datagram(token, { networkId: 200, ids: [b1.endpointId] }), // b1 is not in red
      datagram(token, { networkId: 4242 }),
      datagram(token, { ids: [0xfffffff0] }),
      ...control.datagrams,
    ]);
    await control.arrived();
    for (const pod of ['b1', 'r1']) expect(lab().receivedBy(pod, token)).toBe(0);
    const after = await drops(lab(), 1);
    expect(after['unknown-endpoint-id']).toBe((before['unknown-endpoint-id'] ?? 0) + 2);
    expect(after['unknown-network']).toBe((before['unknown-network'] ?? 0) + 1);
  });

  it('survives truncated, corrupted and random datagrams, delivering only what decodes validly', async () => {
    const n0 = lab().topology.nodes[0]!;
    const n1 = lab().topology.nodes[1]!;
    const token = `garbage-${Date.now()}`;
    const good = datagram(token);
    const bad: Uint8Array[] = [];
    for (let len = 0; len < 40; len++) if (len !== good.length) bad.push(good.subarray(0, len));
    for (let i = 0; i < 16; i++) {
      const flipped = Buffer.from(good);
      flipped[i] ^= 0xff; // every header byte corrupted in turn
      bad.push(flipped);
    }
    for (let i = 0; i < 200; i++) bad.push(randomBytes(1 + (i % 300)));
    const sent = bad.filter((b) => b.length > 0);
    const before = (await lab().agentStats(1)) as {
      dataplane: { datagramsReceived: number; drops: Record<string, number> };
    };
    const control = controls();
    await sendDatagrams(n0.ns, n0.address, n1.address, [...sent, ...control.datagrams]);
    await control.arrived();
    // Worked out from docs/wire-format.md, not from the decoder: every truncation is shorter than
    // the datagram's header + ID + frame length (truncated); flipping byte 0-1 (magic), 2 (version),
    // 3 (type), 4 (flags: reserved bits set), 12-13 (count) or 14-15 (frame length) breaks the
    // layout; 5-7 change the network ID to one that does not exist (100 = 0x000064 -> 0xff0064,
    // 0x00ff64, 0x00009b). Only 8-11, the source endpoint ID, which the receiver does not check,
    // leave a datagram for b1 in blue: 4 deliveries. Random bytes start with "CN" and carry the token
    // with negligible probability.
    expect(lab().receivedBy('b1', token)).toBe(4);
    expect(lab().receivedBy('r1', token)).toBe(0);
    const after = (await lab().agentStats(1)) as typeof before;
    // Every datagram was received, and each one not delivered was dropped and counted.
    expect(after.dataplane.datagramsReceived - before.dataplane.datagramsReceived).toBeGreaterThanOrEqual(
      sent.length + 2,
    );
    // Pods' own multicast on node 1 (IPv6 router solicitations, MLD) with no members may be dropped as
    // no-members meanwhile: a local-frame reason that no datagram yields, so it is left out.
    const datagramDrops = (d: Record<string, number>) => dropTotal(d) - (d['no-members'] ?? 0);
    expect(datagramDrops(after.dataplane.drops) - datagramDrops(before.dataplane.drops)).toBe(
      sent.length - 4,
    );
  });

  it('drops frames whose source MAC or IP a pod does not own, and answers ARP from the directory', async () => {
    const a1 = lab().podInfo('a1');
    const b1 = lab().podInfo('b1');
    const before = await drops(lab(), 0);
    const token = `spoof-${Date.now()}`;
    const control = `ctl-${randomBytes(6).toString('hex')}`;
    const frames = [
      udpFrame({ mac: '02:de:ad:be:ef:01', ip: a1.ip }, token),
      udpFrame({ mac: a1.mac, ip: '10.30.9.9' }, token),
      udpFrame({ mac: a1.mac, ip: b1.ip }, token),
      // The positive control: the same frame from a1's own MAC and IP, after the spoofed ones.
      udpFrame(a1, control),
    ];
    await injectFrames(a1.ns, frames);
    expect(await arrived(lab(), 'b1', control)).toBe(1);
    expect(lab().receivedBy('b1', token)).toBe(0);
    const after = await drops(lab(), 0);
    expect(after['spoofed-mac']).toBe((before['spoofed-mac'] ?? 0) + 1);
    expect(after['spoofed-ip']).toBe((before['spoofed-ip'] ?? 0) + 2);

    // ARP for an endpoint on another node is answered with that endpoint's MAC.
    const { stdout } = await runIn(a1.ns, 'arping', ['-c', '1', '-w', '2', '-I', 'eth0', b1.ip]);
    expect(stdout.toLowerCase()).toContain(`[${b1.mac.toLowerCase()}]`);
  });
});

const keyDir = mkdtempSync(join(tmpdir(), 'castnet-key-'));
const keyFile = join(keyDir, 'wire.key');
writeFileSync(keyFile, KEY_HEX + '\n');
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

describeLab(
  'receive path in wire format version 1, with a cluster key',
  ['--wire-version', '1', '--wire-key-file', keyFile],
  ({ lab, key }) => {
    it('delivers tagged datagrams and drops untagged or wrongly tagged ones', async () => {
      const n0 = lab().topology.nodes[0]!;
      const n1 = lab().topology.nodes[1]!;
      const a1 = lab().podInfo('a1');
      const b1 = lab().podInfo('b1');
      const msg = (token: string) => ({
        networkId: 100,
        sourceEndpointId: a1.endpointId,
        destinations: [b1.endpointId],
        vnetHeader: true,
        frame: withVnet(udpFrame(a1, token)),
      });
      const t = Date.now();
      const wrong = makeWireKey(randomBytes(32));
      await sendDatagrams(n0.ns, n0.address, n1.address, [
        encodeData(msg(`untagged-${t}`)),
        encodeData(msg(`wrongkey-${t}`), wrong),
        encodeData(msg(`tagged-${t}`), key),
        encodeData(msg(`control-${t}`), key),
      ]);
      // The last tagged datagram is the positive control for the three before it.
      expect(await arrived(lab(), 'b1', `control-${t}`)).toBe(1);
      expect(lab().receivedBy('b1', `untagged-${t}`)).toBe(0);
      expect(lab().receivedBy('b1', `wrongkey-${t}`)).toBe(0);
      expect(lab().receivedBy('b1', `tagged-${t}`)).toBe(1);
      const d = await drops(lab(), 1);
      expect(d['bad-datagram:missing-tag']).toBe(1);
      expect(d['bad-datagram:bad-tag']).toBe(1);
    });

    it('authenticates its own traffic end to end, delivering exactly once', async () => {
      const token = await lab().sendTo('a1', GROUP);
      await arrived(lab(), 'b1', await lab().sendTo('a1', GROUP));
      expect(lab().receivedBy('b1', token)).toBe(1);
    });
  },
);
