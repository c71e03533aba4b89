// decideLocalFrame for allowed address pairs: the announcement of a shared address reaches every
// endpoint of the network (even with broadcast off) and names the address for the agent to claim.
import { buildArpReply, buildIPv6Frame, writeEthernetHeader } from '../../frame/build.js';
import { VNET_HDR_LEN } from '../../frame/vnet.js';
import { macBytes } from '../../netaddr/mac.js';
import { ep, macOf, VIP } from '../../../test/harness/endpoint-records.js';
import type { Directory } from '../../lookup/port.js';
import { buildIndex, Resolver } from '../../resolve/index.js';
import { decideLocalFrame, isAnnouncement } from './forward.js';

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

/** An ICMPv6 message of `type` from `srcMac` to `dst`, with the virtio_net_hdr. */
function icmp6(srcMac: string, dst: string, type: number): Uint8Array {
  const payload = new Uint8Array(24);
  payload[0] = type;
  const frame = buildIPv6Frame({
    dstMac: '33:33:00:00:00:01',
    srcMac,
    src: 'fe80::1',
    dst,
    nextHeader: 58,
    hopLimit: 255,
    payload,
  });
  const out = new Uint8Array(VNET_HDR_LEN + frame.length);
  out.set(frame, VNET_HDR_LEN);
  return out;
}

describe('what activates an endpoint (a migrated VM goes live when it announces itself)', () => {
  const mac = macBytes(macOf(1));

  it('QEMU’s RARP, a gratuitous ARP and an unsolicited NA from the endpoint’s MAC announce it', () => {
    expect(isAnnouncement(rarp(macOf(1)), mac)).toBe(true);
    expect(isAnnouncement(garp(1, '10.0.0.1'), mac)).toBe(true);
    expect(isAnnouncement(icmp6(macOf(1), 'ff02::1', 136), mac)).toBe(true);
    // And the RARP is forwarded like any broadcast.
    const { resolver, sender } = setup(true);
    expect(decideLocalFrame(resolver, sender(1), rarp(macOf(1))).kind).toBe('forward');
  });

  it('the pod kernel’s IPv6 chatter before the guest is there, and other MACs, do not', () => {
    // DAD and MLD from the target pod between the CNI ADD and the bridge binding carry the VM's MAC.
    expect(isAnnouncement(icmp6(macOf(1), 'ff02::1:ff00:1', 135), mac)).toBe(false);
    expect(isAnnouncement(icmp6(macOf(1), 'ff02::16', 143), mac)).toBe(false);
    expect(isAnnouncement(icmp6(macOf(1), 'ff02::2', 136), mac)).toBe(false);
    // An ARP request for another address is not gratuitous.
    const request = garp(1, '10.0.0.1');
    request[VNET_HDR_LEN + 14 + 27] = 9;
    expect(isAnnouncement(request, mac)).toBe(false);
    // The in-pod bridge's own frames, a spoofer's.
    expect(isAnnouncement(rarp('02:99:00:00:00:01'), mac)).toBe(false);
    expect(isAnnouncement(new Uint8Array(VNET_HDR_LEN + 8), mac)).toBe(false);
  });
});
