// Ethernet frame parsing for the data plane: just what resolution, anti-spoofing and the membership
// path need, read in place (no copies). Frames may be VLAN-tagged (802.1Q / 802.1ad, up to two tags).
import { formatIPv4, formatIPv6, formatMac } from '../netaddr/address.js';
import { err, fieldError, ok, type FieldError, type Result } from './result.js';

export const ETH_HLEN = 14;
export const ETH_P_IPV4 = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
/** Bytes one 802.1Q/802.1ad tag adds to a frame. */
export const VLAN_TAG_LEN = 4;
export const ETH_P_8021AD = 0x88a8;

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_IGMP = 2;
export const IPPROTO_UDP = 17;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

export const ICMPV6_MLD_QUERY = 130;
export const ICMPV6_MLD_REPORT = 131;
export const ICMPV6_MLD_DONE = 132;
export const ICMPV6_MLD2_REPORT = 143;
export const ICMPV6_ROUTER_SOLICIT = 133;
export const ICMPV6_ROUTER_ADVERT = 134;
export const ICMPV6_NEIGHBOR_SOLICIT = 135;
export const ICMPV6_NEIGHBOR_ADVERT = 136;
export const ICMPV6_REDIRECT = 137;

const MAX_VLAN_TAGS = 2;
const MAX_IPV6_EXTENSION_HEADERS = 8;

export type FrameErrorCode =
  | 'truncated'
  | 'bad-header'
  | 'bad-length'
  | 'too-many-vlan-tags'
  | 'too-many-extension-headers'
  | 'fragmented-ndp';
export type FrameError = FieldError<FrameErrorCode>;

interface IpCommon {
  src: string;
  dst: string;
  /** Upper-layer protocol (for IPv6, after the extension headers). */
  protocol: number;
  /** TTL or hop limit. */
  ttl: number;
  /** IPv4 Router Alert option (RFC 2113) or IPv6 hop-by-hop Router Alert (RFC 2711). */
  routerAlert: boolean;
  /** A non-first fragment: there is no upper-layer header at payloadOffset. */
  laterFragment: boolean;
  headerOffset: number;
  /** Offsets of the 4- or 16-byte source/destination addresses (for pseudo-header checksums). */
  srcOffset: number;
  dstOffset: number;
  payloadOffset: number;
  payloadLength: number;
}

export interface Ipv4Info extends IpCommon {
  version: 4;
}

export interface Ipv6Info extends IpCommon {
  version: 6;
}

export type IpInfo = Ipv4Info | Ipv6Info;

export interface ArpInfo {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export interface NdpInfo {
  type: number;
  /** Target address of a neighbour solicitation/advertisement. */
  target?: string;
  /** The source (NS/RS) or target (NA) link-layer address option. */
  linkLayerAddress?: string;
}

export type FrameKind = 'igmp' | 'mld' | 'arp' | 'ndp' | 'ip' | 'other';

export interface ParsedFrame {
  dstMac: string;
  srcMac: string;
  /** The I/G bit of the destination MAC: multicast or broadcast. */
  groupMac: boolean;
  /** VLAN IDs, outermost first. */
  vlans: number[];
  ethertype: number;
  l3Offset: number;
  kind: FrameKind;
  ip?: IpInfo;
  arp?: ArpInfo;
  ndp?: NdpInfo;
  /** ICMPv6 type when the upper layer is ICMPv6. */
  icmpv6Type?: number;
}

function truncated(field: string, need: number, have: number): Result<never, FrameError> {
  return err(fieldError('truncated', field, `needs ${need} bytes, only ${Math.max(0, have)} left`));
}

/** Parses the frame in b[offset, end). Never throws; an error names the field that is wrong. */
export function parseFrame(b: Uint8Array, offset = 0, end = b.length): Result<ParsedFrame, FrameError> {
  if (end - offset < ETH_HLEN) return truncated('ethernet header', ETH_HLEN, end - offset);
  const vlans: number[] = [];
  let p = offset + 12;
  let ethertype = (b[p] << 8) | b[p + 1];
  p += 2;
  while (ethertype === ETH_P_8021Q || ethertype === ETH_P_8021AD) {
    if (vlans.length === MAX_VLAN_TAGS) {
      return err(fieldError('too-many-vlan-tags', 'ethernet.vlan', `more than ${MAX_VLAN_TAGS} VLAN tags`));
    }
    if (end - p < 4) return truncated('ethernet.vlan', 4, end - p);
    vlans.push(((b[p] << 8) | b[p + 1]) & 0x0fff);
    ethertype = (b[p + 2] << 8) | b[p + 3];
    p += 4;
  }
  const frame: ParsedFrame = {
    dstMac: formatMac(b, offset),
    srcMac: formatMac(b, offset + 6),
    groupMac: (b[offset] & 1) === 1,
    vlans,
    ethertype,
    l3Offset: p,
    kind: 'other',
  };
  if (ethertype === ETH_P_IPV4) return parseIPv4Packet(b, p, end, frame);
  if (ethertype === ETH_P_IPV6) return parseIPv6Packet(b, p, end, frame);
  if (ethertype === ETH_P_ARP) return parseArp(b, p, end, frame);
  return ok(frame);
}

function parseIPv4Packet(
  b: Uint8Array,
  p: number,
  end: number,
  frame: ParsedFrame,
): Result<ParsedFrame, FrameError> {
  if (end - p < 20) return truncated('ipv4 header', 20, end - p);
  if (b[p] >> 4 !== 4) return err(fieldError('bad-header', 'ipv4.version', `is ${b[p] >> 4}, want 4`));
  const ihl = (b[p] & 0x0f) * 4;
  if (ihl < 20) return err(fieldError('bad-header', 'ipv4.ihl', `header length ${ihl} < 20`));
  const totalLength = (b[p + 2] << 8) | b[p + 3];
  if (totalLength < ihl)
    return err(fieldError('bad-length', 'ipv4.total_length', `${totalLength} < header ${ihl}`));
  // Frames shorter than 60 bytes are padded, so the frame may be longer than the packet, never shorter.
  if (end - p < totalLength) return truncated('ipv4 packet', totalLength, end - p);
  let routerAlert = false;
  for (let o = p + 20; o < p + ihl;) {
    const type = b[o];
    if (type === 0) break;
    if (type === 1) {
      o++;
      continue;
    }
    if (o + 1 >= p + ihl) return err(fieldError('bad-header', 'ipv4.options', 'option length missing'));
    const len = b[o + 1];
    if (len < 2 || o + len > p + ihl)
      return err(fieldError('bad-header', 'ipv4.options', `option length ${len} invalid`));
    if (type === 148) routerAlert = true;
    o += len;
  }
  const fragOffset = ((b[p + 6] & 0x1f) << 8) | b[p + 7];
  const protocol = b[p + 9];
  frame.ip = {
    version: 4,
    src: formatIPv4(b, p + 12),
    dst: formatIPv4(b, p + 16),
    protocol,
    ttl: b[p + 8],
    routerAlert,
    laterFragment: fragOffset !== 0,
    headerOffset: p,
    srcOffset: p + 12,
    dstOffset: p + 16,
    payloadOffset: p + ihl,
    payloadLength: totalLength - ihl,
  };
  frame.kind = protocol === IPPROTO_IGMP && fragOffset === 0 ? 'igmp' : 'ip';
  return ok(frame);
}

function parseIPv6Packet(
  b: Uint8Array,
  p: number,
  end: number,
  frame: ParsedFrame,
): Result<ParsedFrame, FrameError> {
  if (end - p < 40) return truncated('ipv6 header', 40, end - p);
  if (b[p] >> 4 !== 6) return err(fieldError('bad-header', 'ipv6.version', `is ${b[p] >> 4}, want 6`));
  const payloadLength = (b[p + 4] << 8) | b[p + 5];
  const payloadEnd = p + 40 + payloadLength;
  if (payloadEnd > end) return truncated('ipv6 payload', payloadLength, end - p - 40);
  let next = b[p + 6];
  let o = p + 40;
  let routerAlert = false;
  let laterFragment = false;
  let fragmented = false;
  for (let n = 0; ; n++) {
    if (
      next !== IPPROTO_HOPOPTS &&
      next !== IPPROTO_ROUTING &&
      next !== IPPROTO_DSTOPTS &&
      next !== IPPROTO_FRAGMENT &&
      next !== IPPROTO_AH
    ) {
      break;
    }
    if (n === MAX_IPV6_EXTENSION_HEADERS) {
      return err(
        fieldError(
          'too-many-extension-headers',
          'ipv6.next_header',
          `more than ${MAX_IPV6_EXTENSION_HEADERS}`,
        ),
      );
    }
    if (payloadEnd - o < 8) return truncated('ipv6 extension header', 8, payloadEnd - o);
    const len = next === IPPROTO_FRAGMENT ? 8 : next === IPPROTO_AH ? (b[o + 1] + 2) * 4 : (b[o + 1] + 1) * 8;
    if (payloadEnd - o < len) return truncated('ipv6 extension header', len, payloadEnd - o);
    if (next === IPPROTO_HOPOPTS) {
      for (let q = o + 2; q < o + len;) {
        if (b[q] === 0) {
          q++;
          continue;
        }
        if (q + 1 >= o + len || q + 2 + b[q + 1] > o + len) {
          return err(fieldError('bad-header', 'ipv6.hop_by_hop', 'option overruns the header'));
        }
        if (b[q] === 5) routerAlert = true;
        q += 2 + b[q + 1];
      }
    }
    if (next === IPPROTO_FRAGMENT) fragmented = true;
    if (next === IPPROTO_FRAGMENT && (((b[o + 2] << 8) | b[o + 3]) & 0xfff8) !== 0) laterFragment = true;
    next = b[o];
    o += len;
    if (laterFragment) break;
  }
  frame.ip = {
    version: 6,
    src: formatIPv6(b, p + 8),
    dst: formatIPv6(b, p + 24),
    protocol: next,
    ttl: b[p + 7],
    routerAlert,
    laterFragment,
    headerOffset: p,
    srcOffset: p + 8,
    dstOffset: p + 24,
    payloadOffset: o,
    payloadLength: payloadEnd - o,
  };
  frame.kind = 'ip';
  if (next !== IPPROTO_ICMPV6 || laterFragment) return ok(frame);
  if (payloadEnd - o < 4) return truncated('icmpv6 header', 4, payloadEnd - o);
  const type = b[o];
  frame.icmpv6Type = type;
  if (
    type === ICMPV6_MLD_QUERY ||
    type === ICMPV6_MLD_REPORT ||
    type === ICMPV6_MLD_DONE ||
    type === ICMPV6_MLD2_REPORT
  ) {
    frame.kind = 'mld';
  } else if (type >= ICMPV6_ROUTER_SOLICIT && type <= ICMPV6_REDIRECT) {
    // RFC 6980: a fragment could carry the options past what anyone checked.
    if (fragmented)
      return err(fieldError('fragmented-ndp', 'ipv6.fragment', 'neighbour discovery is never fragmented'));
    return parseNdp(b, o, payloadEnd, frame, type);
  }
  return ok(frame);
}

function parseNdp(
  b: Uint8Array,
  o: number,
  end: number,
  frame: ParsedFrame,
  type: number,
): Result<ParsedFrame, FrameError> {
  frame.kind = 'ndp';
  const ndp: NdpInfo = { type };
  frame.ndp = ndp;
  let optionsAt: number;
  if (type === ICMPV6_NEIGHBOR_SOLICIT || type === ICMPV6_NEIGHBOR_ADVERT) {
    if (end - o < 24) return truncated('ndp.target', 24, end - o);
    ndp.target = formatIPv6(b, o + 8);
    optionsAt = o + 24;
  } else if (type === ICMPV6_ROUTER_SOLICIT) {
    optionsAt = o + 8;
  } else {
    return ok(frame); // RA and redirect: only the type matters to castnet
  }
  const wanted = type === ICMPV6_NEIGHBOR_ADVERT ? 2 : 1;
  for (let q = optionsAt; q + 2 <= end;) {
    const len = b[q + 1] * 8;
    if (len === 0 || q + len > end)
      return err(fieldError('bad-length', 'ndp.option', `option length ${len} invalid`));
    if (b[q] === wanted && len >= 8) {
      // Stacks differ on which of two they use (Linux: the first), so two that differ are refused.
      const mac = formatMac(b, q + 2);
      if (ndp.linkLayerAddress !== undefined && ndp.linkLayerAddress !== mac)
        return err(
          fieldError(
            'bad-header',
            'ndp.option',
            `two link-layer address options: ${ndp.linkLayerAddress}, ${mac}`,
          ),
        );
      ndp.linkLayerAddress = mac;
    }
    q += len;
  }
  return ok(frame);
}

function parseArp(
  b: Uint8Array,
  p: number,
  end: number,
  frame: ParsedFrame,
): Result<ParsedFrame, FrameError> {
  if (end - p < 28) return truncated('arp', 28, end - p);
  const htype = (b[p] << 8) | b[p + 1];
  const ptype = (b[p + 2] << 8) | b[p + 3];
  if (htype !== 1 || ptype !== ETH_P_IPV4 || b[p + 4] !== 6 || b[p + 5] !== 4) {
    return err(
      fieldError(
        'bad-header',
        'arp.hardware',
        `htype ${htype} ptype 0x${ptype.toString(16)} is not Ethernet/IPv4`,
      ),
    );
  }
  frame.kind = 'arp';
  frame.arp = {
    op: (b[p + 6] << 8) | b[p + 7],
    senderMac: formatMac(b, p + 8),
    senderIp: formatIPv4(b, p + 14),
    targetMac: formatMac(b, p + 18),
    targetIp: formatIPv4(b, p + 24),
  };
  return ok(frame);
}
