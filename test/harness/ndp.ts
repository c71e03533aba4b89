// ICMPv6 neighbour discovery messages as an endpoint (or an attacker posing as one) sends them.
import { buildIPv6Frame } from '../../pkg/frame/build.js';
import {
  ICMPV6_NEIGHBOR_ADVERT,
  ICMPV6_REDIRECT,
  ICMPV6_ROUTER_ADVERT,
  ICMPV6_ROUTER_SOLICIT,
  IPPROTO_ICMPV6,
} from '../../pkg/frame/ethernet.js';
import { parseIPv6, parseMac } from '../../pkg/netaddr/address.js';

export interface NdpSpec {
  /** ICMPv6 type: 133-137. */
  type: number;
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  /** The target address (NS, NA, redirect). */
  target?: string;
  /** Link-layer address options, in order: source (NS, RS) or target (NA) ones. */
  lla?: string[];
  /** An NA's flags: override (O), so that a neighbour replaces the MAC it has. */
  override?: boolean;
  vlans?: number[];
}

/** The ICMPv6 message's fixed part, by type (RS 8, RA 16, redirect 40, NS and NA 24 bytes). */
const FIXED: Record<number, number> = {
  [ICMPV6_ROUTER_SOLICIT]: 8,
  [ICMPV6_ROUTER_ADVERT]: 16,
  [ICMPV6_REDIRECT]: 40,
};

/** An Ethernet frame carrying the neighbour discovery message `s`, checksummed, hop limit 255. */
export function ndpFrame(s: NdpSpec): Uint8Array {
  const body = new Uint8Array(FIXED[s.type] ?? 24);
  body[0] = s.type;
  if (s.override) body[4] = 0x20;
  if (s.target !== undefined) body.set(parseIPv6(s.target)!, 8);
  const options = (s.lla ?? []).map((mac) => {
    const o = new Uint8Array(8);
    o.set([s.type === ICMPV6_NEIGHBOR_ADVERT ? 2 : 1, 1], 0);
    o.set(parseMac(mac)!, 2);
    return o;
  });
  const payload = new Uint8Array(body.length + 8 * options.length);
  payload.set(body, 0);
  options.forEach((o, i) => payload.set(o, body.length + 8 * i));
  return buildIPv6Frame({
    dstMac: s.dstMac,
    srcMac: s.srcMac,
    src: s.src,
    dst: s.dst,
    nextHeader: IPPROTO_ICMPV6,
    hopLimit: 255,
    payload,
    ...(s.vlans ? { vlans: s.vlans } : {}),
  });
}
