// decideLocalFrame for allowed address pairs: the announcement of a shared address reaches every
// endpoint of the network (even with broadcast off) and names the address for the agent to claim.
import { buildArpReply, writeEthernetHeader } from '../../frame/build.js';
import { VNET_HDR_LEN } from '../../frame/vnet.js';
import { macBytes } from '../../netaddr/mac.js';
import { ep, macOf, VIP } from '../../../test/harness/endpoint-records.js';
import type { Directory } from '../../lookup/port.js';
import { buildIndex, Resolver } from '../../resolve/index.js';
import { decideLocalFrame, isOwnFrame } from './forward.js';

function setup(broadcast: boolean) {
  const d: Directory = {
    networks: [{ name: 'red', id: 1, subnets: ['10.0.0.0/24'], mtu: 1400, multicast: true, broadcast }],
    nodes: ['n1', 'n2'].map((name, i) => ({ name, address: `192.0.2.${i + 1}`, port: 4790, poolIndex: i })),
    endpoints: [ep('n1', 1, 1, { allowedAddresses: [VIP] }), ep('n1', 2, 2), ep('n2', 3, 3)],
    groups: [],
    memberships: [],
  };
  const resolver = new Resolver(buildIndex(d, 'n1'));
  return { resolver, sender: (id: number) => resolver.index.localEndpoint(id) };
}

/** A gratuitous ARP from `host` for `ip`, with the virtio_net_hdr the capture delivers. */
function garp(host: number, ip: string): Uint8Array {
  const frame = buildArpReply(
    { op: 1, senderMac: 'ff:ff:ff:ff:ff:ff', senderIp: ip, targetMac: '00:00:00:00:00:00', targetIp: ip },
    macOf(host),
  );
  const out = new Uint8Array(VNET_HDR_LEN + frame.length);
  out.set(frame, VNET_HDR_LEN);
  return out;
}

describe('decideLocalFrame with allowed address pairs', () => {
  it.each([true, false])('floods the announcement of a shared address (broadcast %s) and names it', (b) => {
    const { resolver, sender } = setup(b);
    const a = decideLocalFrame(resolver, sender(1), garp(1, VIP));
    expect(a.kind).toBe('forward');
    expect(a.announced).toBe(VIP);
    if (a.kind === 'forward') {
      expect(a.delivery.local).toEqual([2]);
      expect(a.delivery.remote.map((r) => [r.node.name, r.endpointIds])).toEqual([['n2', [3]]]);
    }
  });

  it('leaves other broadcasts to the network’s setting, and drops an undeclared announcement', () => {
    const { resolver, sender } = setup(false);
    expect(decideLocalFrame(resolver, sender(1), garp(1, '10.0.0.1'))).toEqual({
      kind: 'drop',
      reason: 'broadcast-disabled',
    });
    expect(decideLocalFrame(resolver, sender(2), garp(2, VIP))).toEqual({
      kind: 'drop',
      reason: 'spoofed-ip',
    });
  });
});

/** QEMU's announcement of a migrated guest: a RARP request (ethertype 0x8035) from the guest's MAC. */
function rarp(srcMac: string): Uint8Array {
  const out = new Uint8Array(VNET_HDR_LEN + 60);
  const p =
    VNET_HDR_LEN +
    writeEthernetHeader(out.subarray(VNET_HDR_LEN), macBytes('ff:ff:ff:ff:ff:ff'), macBytes(srcMac), 0x8035);
  out.set([0, 1, 8, 0, 6, 4, 0, 3], p);
  return out;
}

describe('what activates an endpoint (a migrated VM goes live on its first own frame)', () => {
  it('QEMU’s RARP announcement from the endpoint’s MAC is the endpoint’s own frame, and is forwarded', () => {
    const { resolver, sender } = setup(true);
    expect(isOwnFrame(rarp(macOf(1)), macBytes(macOf(1)))).toBe(true);
    expect(decideLocalFrame(resolver, sender(1), rarp(macOf(1))).kind).toBe('forward');
  });

  it('a frame from another MAC on the pod link (the in-pod bridge, a spoofer) is not', () => {
    expect(isOwnFrame(rarp('02:99:00:00:00:01'), macBytes(macOf(1)))).toBe(false);
    expect(isOwnFrame(new Uint8Array(VNET_HDR_LEN + 8), macBytes(macOf(1)))).toBe(false);
  });
});
