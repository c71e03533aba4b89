// Builders for the few frames the agent originates itself: ARP replies here, IGMP/MLD queries in pkg/igmp.
import { parseIPv4, parseIPv6, parseMac } from '../netaddr/address.js';
import { fillIPv4HeaderChecksum, internetChecksum, ipv6PseudoHeaderSum } from './checksum.js';
import {
  ETH_P_8021Q,
  ETH_P_ARP,
  ETH_P_IPV4,
  ETH_P_IPV6,
  IPPROTO_HOPOPTS,
  IPPROTO_ICMPV6,
} from './ethernet.js';
import type { ArpInfo } from './ethernet.js';

/** Frames shorter than this (without FCS) are padded, as an Ethernet NIC would. */
export const ETH_MIN_FRAME = 60;

function mustMac(s: string, field: string): Uint8Array {
  const m = parseMac(s);
  if (!m) throw new Error(`${field}: ${JSON.stringify(s)} is not a MAC address`);
  return m;
}

function mustIPv6(s: string, field: string): Uint8Array {
  const a = parseIPv6(s);
  if (!a) throw new Error(`${field}: ${JSON.stringify(s)} is not an IPv6 address`);
  return a;
}

function mustIPv4(s: string, field: string): Uint8Array {
  const a = parseIPv4(s);
  if (!a) throw new Error(`${field}: ${JSON.stringify(s)} is not an IPv4 address`);
  return a;
}

/** Writes dst, src, VLAN tags and ethertype at 0; returns the offset of the payload. */
export function writeEthernetHeader(
  out: Uint8Array,
  dst: Uint8Array,
  src: Uint8Array,
  ethertype: number,
  vlans: readonly number[] = [],
): number {
  out.set(dst, 0);
  out.set(src, 6);
  let p = 12;
  for (const v of vlans) {
    out[p] = ETH_P_8021Q >> 8;
    out[p + 1] = ETH_P_8021Q & 0xff;
    out[p + 2] = (v >> 8) & 0x0f;
    out[p + 3] = v & 0xff;
    p += 4;
  }
  out[p] = ethertype >> 8;
  out[p + 1] = ethertype & 0xff;
  return p + 2;
}

export function ethernetHeaderLength(vlans: readonly number[] = []): number {
  return 14 + 4 * vlans.length;
}

/**
 * The reply to an ARP request for `request.targetIp`, owned by `targetMac`, addressed to the requester
 * (same VLAN tags). Addresses come from the agent's own tables, so a bad one is a programming error.
 */
export function buildArpReply(
  request: ArpInfo,
  targetMac: string,
  vlans: readonly number[] = [],
): Uint8Array {
  const requesterMac = mustMac(request.senderMac, 'arp.sender_mac');
  const ownerMac = mustMac(targetMac, 'targetMac');
  const hdr = ethernetHeaderLength(vlans);
  const out = new Uint8Array(Math.max(ETH_MIN_FRAME, hdr + 28));
  const p = writeEthernetHeader(out, requesterMac, ownerMac, ETH_P_ARP, vlans);
  out.set([0, 1, 0x08, 0x00, 6, 4, 0, 2], p);
  out.set(ownerMac, p + 8);
  out.set(mustIPv4(request.targetIp, 'arp.target_ip'), p + 14);
  out.set(requesterMac, p + 18);
  out.set(mustIPv4(request.senderIp, 'arp.sender_ip'), p + 24);
  return out;
}

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export interface IPv4FrameSpec {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  protocol: number;
  ttl: number;
  /** Adds the 4-byte Router Alert option (RFC 2113), as IGMP requires. */
  routerAlert?: boolean;
  payload: Uint8Array;
  vlans?: readonly number[];
}

/** An Ethernet+IPv4 frame with a valid header checksum; the payload is copied as is. */
export function buildIPv4Frame(spec: IPv4FrameSpec): Uint8Array {
  const vlans = spec.vlans ?? [];
  const ihl = spec.routerAlert ? 24 : 20;
  const total = ihl + spec.payload.length;
  const hdr = ethernetHeaderLength(vlans);
  const out = new Uint8Array(Math.max(ETH_MIN_FRAME, hdr + total));
  const p = writeEthernetHeader(
    out,
    mustMac(spec.dstMac, 'dstMac'),
    mustMac(spec.srcMac, 'srcMac'),
    ETH_P_IPV4,
    vlans,
  );
  out[p] = 0x40 | (ihl / 4);
  out[p + 2] = total >> 8;
  out[p + 3] = total & 0xff;
  out[p + 6] = 0x40; // DF
  out[p + 8] = spec.ttl;
  out[p + 9] = spec.protocol;
  out.set(mustIPv4(spec.src, 'src'), p + 12);
  out.set(mustIPv4(spec.dst, 'dst'), p + 16);
  if (spec.routerAlert) out.set([148, 4, 0, 0], p + 20);
  fillIPv4HeaderChecksum(out, p);
  out.set(spec.payload, p + ihl);
  return out;
}

export interface IPv6FrameSpec {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  nextHeader: number;
  hopLimit: number;
  /** Adds a hop-by-hop header with the Router Alert option (RFC 2711, value 0 = MLD). */
  routerAlert?: boolean;
  payload: Uint8Array;
  vlans?: readonly number[];
}

/** An Ethernet+IPv6 frame. For ICMPv6 the checksum (payload bytes 2-3) is filled in. */
export function buildIPv6Frame(spec: IPv6FrameSpec): Uint8Array {
  const vlans = spec.vlans ?? [];
  const ext = spec.routerAlert ? 8 : 0;
  const hdr = ethernetHeaderLength(vlans);
  const out = new Uint8Array(Math.max(ETH_MIN_FRAME, hdr + 40 + ext + spec.payload.length));
  const p = writeEthernetHeader(
    out,
    mustMac(spec.dstMac, 'dstMac'),
    mustMac(spec.srcMac, 'srcMac'),
    ETH_P_IPV6,
    vlans,
  );
  const payloadLength = ext + spec.payload.length;
  out[p] = 0x60;
  out[p + 4] = payloadLength >> 8;
  out[p + 5] = payloadLength & 0xff;
  out[p + 6] = spec.routerAlert ? IPPROTO_HOPOPTS : spec.nextHeader;
  out[p + 7] = spec.hopLimit;
  out.set(mustIPv6(spec.src, 'src'), p + 8);
  out.set(mustIPv6(spec.dst, 'dst'), p + 24);
  if (spec.routerAlert) out.set([spec.nextHeader, 0, 5, 2, 0, 0, 1, 0], p + 40);
  const l4 = p + 40 + ext;
  out.set(spec.payload, l4);
  if (spec.nextHeader === IPPROTO_ICMPV6) {
    const end = l4 + spec.payload.length;
    out[l4 + 2] = 0;
    out[l4 + 3] = 0;
    const c = internetChecksum(
      out,
      l4,
      end,
      ipv6PseudoHeaderSum(out, p + 8, out, p + 24, end - l4, IPPROTO_ICMPV6),
    );
    out[l4 + 2] = c >> 8;
    out[l4 + 3] = c & 0xff;
  }
  return out;
}
