// General and group(-and-source)-specific queries as complete Ethernet frames the agent injects into
// an endpoint's link: IGMPv3 (0x11, TTL 1, Router Alert) and MLDv2 (130, hop limit 1, hop-by-hop
// Router Alert). Querier addresses come from the agent's configuration, so bad ones throw.
import {
  canonicalAddress,
  formatMac,
  ipv4MulticastMac,
  ipv6MulticastMac,
  parseIPv4,
  parseIPv6,
} from '../netaddr/address.js';
import { buildIPv4Frame, buildIPv6Frame } from '../frame/build.js';
import { internetChecksum } from '../frame/checksum.js';
import { IPPROTO_ICMPV6, IPPROTO_IGMP } from '../frame/ethernet.js';
import { encodeCode16, encodeCode8 } from './codes.js';

export interface QuerySpec {
  querierMac: string;
  /** IPv4 address, or for MLD an IPv6 link-local address (RFC 9777 5.1.14). */
  querierIp: string;
  /** Absent: a general query. */
  group?: string;
  /** With `group`: a group-and-source-specific query. */
  sources?: string[];
  maxResponseMs: number;
  robustness: number;
  queryIntervalSec: number;
  /** S flag: receiving routers suppress timer updates (last-member queries after the first). */
  suppressRouterSide?: boolean;
  vlans?: number[];
}

function must<T>(v: T | undefined, field: string, value: string, what: string): T {
  if (v === undefined) throw new Error(`${field}: ${JSON.stringify(value)} is not ${what}`);
  return v;
}

function flagsByte(q: QuerySpec): number {
  return (q.suppressRouterSide ? 0x08 : 0) | (q.robustness <= 7 ? q.robustness : 0);
}

export function buildIgmpQuery(q: QuerySpec): Uint8Array {
  const dst = q.group ?? '224.0.0.1';
  const group = must(parseIPv4(q.group ?? '0.0.0.0'), 'group', q.group ?? '', 'an IPv4 group');
  const sources = (q.sources ?? []).map((s) => must(parseIPv4(s), 'sources', s, 'an IPv4 address'));
  const msg = new Uint8Array(12 + 4 * sources.length);
  msg[0] = 0x11;
  msg[1] = encodeCode8(q.maxResponseMs / 100);
  msg.set(group, 4);
  msg[8] = flagsByte(q);
  msg[9] = encodeCode8(q.queryIntervalSec);
  msg[10] = sources.length >> 8;
  msg[11] = sources.length & 0xff;
  sources.forEach((s, i) => msg.set(s, 12 + 4 * i));
  const c = internetChecksum(msg, 0, msg.length);
  msg[2] = c >> 8;
  msg[3] = c & 0xff;
  return buildIPv4Frame({
    dstMac: formatMac(ipv4MulticastMac(must(parseIPv4(dst), 'group', dst, 'an IPv4 group'))),
    srcMac: q.querierMac,
    src: q.querierIp,
    dst,
    protocol: IPPROTO_IGMP,
    ttl: 1,
    routerAlert: true,
    payload: msg,
    vlans: q.vlans,
  });
}

export function buildMldQuery(q: QuerySpec): Uint8Array {
  const dst = q.group ?? 'ff02::1';
  const group = must(parseIPv6(q.group ?? '::'), 'group', q.group ?? '', 'an IPv6 group');
  const sources = (q.sources ?? []).map((s) => must(parseIPv6(s), 'sources', s, 'an IPv6 address'));
  const msg = new Uint8Array(28 + 16 * sources.length);
  msg[0] = 130;
  const mrc = encodeCode16(q.maxResponseMs);
  msg[4] = mrc >> 8;
  msg[5] = mrc & 0xff;
  msg.set(group, 8);
  msg[24] = flagsByte(q);
  msg[25] = encodeCode8(q.queryIntervalSec);
  msg[26] = sources.length >> 8;
  msg[27] = sources.length & 0xff;
  sources.forEach((s, i) => msg.set(s, 28 + 16 * i));
  return buildIPv6Frame({
    dstMac: formatMac(ipv6MulticastMac(must(parseIPv6(dst), 'group', dst, 'an IPv6 group'))),
    srcMac: q.querierMac,
    src: q.querierIp,
    dst,
    nextHeader: IPPROTO_ICMPV6,
    hopLimit: 1,
    routerAlert: true,
    payload: msg,
    vlans: q.vlans,
  });
}

/** An IPv6 link-local address derived from a MAC (modified EUI-64), for the MLD querier's source. */
export function linkLocalFromMac(mac: string): string {
  const m = mac.split(':').map((h) => parseInt(h, 16));
  const w = (a: number, b: number) => ((a << 8) | b).toString(16);
  return canonicalAddress(`fe80::${w(m[0] ^ 0x02, m[1])}:${w(m[2], 0xff)}:${w(0xfe, m[3])}:${w(m[4], m[5])}`);
}
