// rtnetlink request bodies and reply decoders for links, addresses, routes and bridge FDB entries.
// Pure: each builder returns the message body (fixed header + attributes) the kernel expects.
import { formatMac } from '../netaddr/address.js';
import { macBytes } from '../netaddr/mac.js';
import { Cidr, formatIp, ipFromBytes, ipToBytes, parseCidr, parseIp } from '../netaddr/ip.js';
import { AF_BRIDGE, AF_INET, AF_INET6, AF_UNSPEC } from '../sys/constants.js';
import * as C from './constants.js';
import {
  Attr,
  attr,
  cString,
  decodeIfAddr,
  decodeIfInfo,
  decodeNdMsg,
  decodeRtMsg,
  encodeAttrs,
  encodeIfAddr,
  encodeIfInfo,
  encodeNdMsg,
  encodeRtMsg,
  IFADDRMSG_LEN,
  IFINFOMSG_LEN,
  NDMSG_LEN,
  parseAttrs,
  RTMSG_LEN,
} from './message.js';

const IFLA_INFO_SLAVE_DATA = 5;

export interface BridgePortFlags {
  learning?: boolean;
  unicastFlood?: boolean;
  mcastFlood?: boolean;
  bcastFlood?: boolean;
  /** Hairpin mode: frames may leave by the port they came in on. */
  hairpin?: boolean;
}

export interface Link {
  index: number;
  name: string;
  flags: number;
  mtu: number;
  mac?: string;
  /** Index of the bridge (or other master) this link is enslaved to. */
  master?: number;
  /** For a veth: the peer's index, in the namespace `linkNetnsId` names (or this one). */
  link?: number;
  linkNetnsId?: number;
  kind?: string;
  slaveKind?: string;
  /** Present when the link is a bridge port. */
  bridgePort?: BridgePortFlags;
}

export const isUp = (l: Link): boolean => (l.flags & C.IFF_UP) !== 0;

/** Settings a new link or RTM_SETLINK may carry. */
export interface LinkSettings {
  name?: string;
  mac?: string;
  mtu?: number;
  /** Bridge index to enslave to; 0 releases. */
  master?: number;
  up?: boolean;
  /** Keep the kernel from giving the link an IPv6 link-local address (bridge ports need none). */
  noIpv6LinkLocal?: boolean;
}

/**
 * Attributes for a new link. The kernel refuses IFLA_AF_SPEC (EAFNOSUPPORT) and IFF_UP (ENOTCONN) in
 * the creating message, so `noIpv6LinkLocal` and `up` are applied by a later RTM_NEWLINK.
 */
function newLinkAttrs(s: LinkSettings): Attr[] {
  return linkAttrs({ ...s, noIpv6LinkLocal: false });
}

function linkAttrs(s: LinkSettings): Attr[] {
  const a: Attr[] = [];
  if (s.name !== undefined) a.push(attr.str(C.IFLA_IFNAME, s.name));
  if (s.mac !== undefined) a.push(attr.bytes(C.IFLA_ADDRESS, macBytes(s.mac)));
  if (s.mtu !== undefined) a.push(attr.u32(C.IFLA_MTU, s.mtu));
  if (s.master !== undefined) a.push(attr.u32(C.IFLA_MASTER, s.master));
  if (s.noIpv6LinkLocal) {
    a.push(
      attr.nested(C.IFLA_AF_SPEC, [
        attr.nested(AF_INET6, [attr.u8(C.IFLA_INET6_ADDR_GEN_MODE, C.IN6_ADDR_GEN_MODE_NONE)]),
      ]),
    );
  }
  return a;
}

function ifInfo(index: number, s: LinkSettings): Buffer {
  const change = s.up === undefined ? 0 : C.IFF_UP;
  return encodeIfInfo({ index, flags: s.up ? C.IFF_UP : 0, change });
}

export function setLinkBody(index: number, s: LinkSettings): Buffer {
  return Buffer.concat([ifInfo(index, s), encodeAttrs(linkAttrs(s))]);
}

export interface VethSpec extends LinkSettings {
  name: string;
  /** The peer's settings; its `up` and `noIpv6LinkLocal` need a request in its own namespace. */
  peer: Omit<LinkSettings, 'up' | 'noIpv6LinkLocal'> & {
    name: string;
    /** An open fd of the namespace the peer is created in (IFLA_NET_NS_FD). */
    netnsFd?: number;
  };
}

/** RTM_NEWLINK body creating a veth pair; the peer may be born in another namespace. */
export function newVethBody(v: VethSpec): Buffer {
  const peerAttrs = newLinkAttrs(v.peer);
  if (v.peer.netnsFd !== undefined) peerAttrs.push(attr.u32(C.IFLA_NET_NS_FD, v.peer.netnsFd));
  const peer = Buffer.concat([encodeIfInfo({}), encodeAttrs(peerAttrs)]);
  const info = attr.nested(C.IFLA_LINKINFO, [
    attr.str(C.IFLA_INFO_KIND, 'veth'),
    attr.nested(C.IFLA_INFO_DATA, [{ type: C.VETH_INFO_PEER | C.NLA_F_NESTED, value: peer }]),
  ]);
  return Buffer.concat([encodeIfInfo({}), encodeAttrs([...newLinkAttrs(v), info])]);
}

export interface BridgeSpec extends LinkSettings {
  name: string;
}

export interface BridgeOptions {
  /** IGMP/MLD snooping; off makes every multicast group "unregistered", flooded per port mcast_flood. */
  mcastSnooping?: boolean;
  stp?: boolean;
}

/** RTM_NEWLINK body changing bridge options of an existing bridge (IFLA_INFO_DATA of kind "bridge"). */
export function bridgeOptionsBody(index: number, o: BridgeOptions): Buffer {
  const data: Attr[] = [];
  if (o.mcastSnooping !== undefined) data.push(attr.u8(C.IFLA_BR_MCAST_SNOOPING, o.mcastSnooping ? 1 : 0));
  if (o.stp !== undefined) data.push(attr.u32(C.IFLA_BR_STP_STATE, o.stp ? 1 : 0));
  const info = attr.nested(C.IFLA_LINKINFO, [
    attr.str(C.IFLA_INFO_KIND, 'bridge'),
    attr.nested(C.IFLA_INFO_DATA, data),
  ]);
  return Buffer.concat([encodeIfInfo({ index }), encodeAttrs([info])]);
}

export function newBridgeBody(b: BridgeSpec): Buffer {
  const info = attr.nested(C.IFLA_LINKINFO, [attr.str(C.IFLA_INFO_KIND, 'bridge')]);
  return Buffer.concat([encodeIfInfo({}), encodeAttrs([...newLinkAttrs(b), info])]);
}

const skipStats = attr.u32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_SKIP_STATS);

/** RTM_GETLINK by name (statistics skipped: castnet never reads them); RTM_DELLINK by name. */
export function linkByNameBody(name: string): Buffer {
  return Buffer.concat([encodeIfInfo({}), encodeAttrs([attr.str(C.IFLA_IFNAME, name), skipStats])]);
}

export function linkByIndexBody(index: number): Buffer {
  return Buffer.concat([encodeIfInfo({ index }), encodeAttrs([skipStats])]);
}

const u8s = (b: Buffer | undefined): boolean | undefined => (b ? b[0] !== 0 : undefined);

function decodeBrPort(b: Buffer): BridgePortFlags {
  const a = parseAttrs(b);
  return {
    learning: u8s(a.get(C.IFLA_BRPORT_LEARNING)),
    unicastFlood: u8s(a.get(C.IFLA_BRPORT_UNICAST_FLOOD)),
    mcastFlood: u8s(a.get(C.IFLA_BRPORT_MCAST_FLOOD)),
    bcastFlood: u8s(a.get(C.IFLA_BRPORT_BCAST_FLOOD)),
    hairpin: u8s(a.get(C.IFLA_BRPORT_MODE)),
  };
}

export function decodeLink(payload: Buffer): Link {
  const h = decodeIfInfo(payload);
  const a = parseAttrs(payload.subarray(IFINFOMSG_LEN));
  const u32 = (t: number): number | undefined => a.get(t)?.readUInt32LE(0);
  const l: Link = {
    index: h.index,
    name: cString(a.get(C.IFLA_IFNAME) ?? Buffer.alloc(0)),
    flags: h.flags,
    mtu: u32(C.IFLA_MTU) ?? 0,
  };
  const mac = a.get(C.IFLA_ADDRESS);
  if (mac?.length === 6) l.mac = formatMac(mac);
  const master = u32(C.IFLA_MASTER);
  if (master) l.master = master;
  // The kernel sends IFLA_LINK only when it differs from the link itself (veth peer, VLAN parent...);
  // a veth peer in another namespace may still have the same number.
  const link = u32(C.IFLA_LINK);
  if (link) l.link = link;
  const nsid = a.get(C.IFLA_LINK_NETNSID);
  if (nsid) l.linkNetnsId = nsid.readInt32LE(0);
  const info = a.get(C.IFLA_LINKINFO);
  if (info) {
    const ia = parseAttrs(info);
    const kind = ia.get(C.IFLA_INFO_KIND);
    if (kind) l.kind = cString(kind);
    const slaveKind = ia.get(C.IFLA_INFO_SLAVE_KIND);
    if (slaveKind) l.slaveKind = cString(slaveKind);
    const slaveData = ia.get(IFLA_INFO_SLAVE_DATA);
    if (l.slaveKind === 'bridge' && slaveData) l.bridgePort = decodeBrPort(slaveData);
  }
  return l;
}

/** RTM_SETLINK (AF_BRIDGE) body setting bridge port flags through IFLA_PROTINFO. */
export function bridgePortBody(index: number, f: BridgePortFlags): Buffer {
  const flag = (t: number, v: boolean | undefined): Attr[] =>
    v === undefined ? [] : [attr.u8(t, v ? 1 : 0)];
  const port = [
    ...flag(C.IFLA_BRPORT_LEARNING, f.learning),
    ...flag(C.IFLA_BRPORT_UNICAST_FLOOD, f.unicastFlood),
    ...flag(C.IFLA_BRPORT_MCAST_FLOOD, f.mcastFlood),
    ...flag(C.IFLA_BRPORT_BCAST_FLOOD, f.bcastFlood),
    ...flag(C.IFLA_BRPORT_MODE, f.hairpin),
  ];
  return Buffer.concat([
    encodeIfInfo({ family: AF_BRIDGE, index }),
    encodeAttrs([attr.nested(C.IFLA_PROTINFO, port)]),
  ]);
}

// Addresses

export interface Address {
  index: number;
  /** address/prefix */
  cidr: string;
  flags: number;
  scope: number;
}

const familyOf = (c: Cidr): number => (c.ip.family === 4 ? AF_INET : AF_INET6);

/** RTM_NEWADDR/RTM_DELADDR body. IPv6 addresses get IFA_F_NODAD when `nodad` (a fresh MAC-unique link). */
export function addrBody(index: number, cidr: string, opts: { nodad?: boolean } = {}): Buffer {
  const c = parseCidr(cidr);
  const flags = c.ip.family === 6 && opts.nodad ? C.IFA_F_NODAD : 0;
  const bytes = ipToBytes(c.ip);
  const attrs = [attr.bytes(C.IFA_LOCAL, bytes), attr.bytes(C.IFA_ADDRESS, bytes)];
  if (flags) attrs.push(attr.u32(C.IFA_FLAGS, flags));
  const h = encodeIfAddr({ family: familyOf(c), prefixlen: c.prefix, flags, scope: 0, index });
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

export function addrDumpBody(family = AF_UNSPEC): Buffer {
  return encodeIfAddr({ family, prefixlen: 0, flags: 0, scope: 0, index: 0 });
}

export function decodeAddress(payload: Buffer): Address {
  const h = decodeIfAddr(payload);
  const a = parseAttrs(payload.subarray(IFADDRMSG_LEN));
  const raw = a.get(C.IFA_LOCAL) ?? a.get(C.IFA_ADDRESS) ?? Buffer.alloc(h.family === AF_INET ? 4 : 16);
  const flags = a.get(C.IFA_FLAGS)?.readUInt32LE(0) ?? h.flags;
  return { index: h.index, cidr: `${formatIp(ipFromBytes(raw))}/${h.prefixlen}`, flags, scope: h.scope };
}

// Routes

export interface Route {
  /** Destination prefix; "0.0.0.0/0" or "::/0" for a default route. */
  dst: string;
  gateway?: string;
  oif?: number;
  mtu?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export function routeBody(r: Route): Buffer {
  const dst = parseCidr(r.dst);
  const family = familyOf(dst);
  const table = r.table ?? C.RT_TABLE_MAIN;
  const scope = r.scope ?? (r.gateway ? C.RT_SCOPE_UNIVERSE : C.RT_SCOPE_LINK);
  const attrs: Attr[] = [];
  if (dst.prefix > 0) attrs.push(attr.bytes(C.RTA_DST, ipToBytes(dst.ip)));
  if (r.gateway) {
    const gw = parseIp(r.gateway);
    if (gw.family !== dst.ip.family)
      throw new Error(`route ${r.dst}: gateway ${r.gateway} is of another family`);
    attrs.push(attr.bytes(C.RTA_GATEWAY, ipToBytes(gw)));
  }
  if (r.oif) attrs.push(attr.u32(C.RTA_OIF, r.oif));
  if (r.priority !== undefined) attrs.push(attr.u32(C.RTA_PRIORITY, r.priority));
  if (table > 255) attrs.push(attr.u32(C.RTA_TABLE, table));
  if (r.mtu) attrs.push(attr.nested(C.RTA_METRICS, [attr.u32(C.RTAX_MTU, r.mtu)]));
  const h = encodeRtMsg({
    family,
    dstLen: dst.prefix,
    srcLen: 0,
    tos: 0,
    table: table > 255 ? 0 : table,
    protocol: C.RTPROT_BOOT,
    scope,
    type: C.RTN_UNICAST,
    flags: 0,
  });
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

export function routeDumpBody(family: number): Buffer {
  return encodeRtMsg({
    family,
    dstLen: 0,
    srcLen: 0,
    tos: 0,
    table: 0,
    protocol: 0,
    scope: 0,
    type: 0,
    flags: 0,
  });
}

export function decodeRoute(payload: Buffer): Route {
  const h = decodeRtMsg(payload);
  const a = parseAttrs(payload.subarray(RTMSG_LEN));
  const zero = Buffer.alloc(h.family === AF_INET ? 4 : 16);
  const r: Route = {
    dst: `${formatIp(ipFromBytes(a.get(C.RTA_DST) ?? zero))}/${h.dstLen}`,
    table: a.get(C.RTA_TABLE)?.readUInt32LE(0) ?? h.table,
    scope: h.scope,
  };
  const gw = a.get(C.RTA_GATEWAY);
  if (gw) r.gateway = formatIp(ipFromBytes(gw));
  const oif = a.get(C.RTA_OIF);
  if (oif) r.oif = oif.readUInt32LE(0);
  const prio = a.get(C.RTA_PRIORITY);
  if (prio) r.priority = prio.readUInt32LE(0);
  const metrics = a.get(C.RTA_METRICS);
  const mtu = metrics && parseAttrs(metrics).get(C.RTAX_MTU);
  if (mtu) r.mtu = mtu.readUInt32LE(0);
  return r;
}

// Bridge forwarding database

export interface FdbEntry {
  index: number;
  mac: string;
  state: number;
  flags: number;
  master?: number;
}

/**
 * RTM_NEWNEIGH/RTM_DELNEIGH (AF_BRIDGE) body for a static entry in the bridge's (master's) FDB.
 * NUD_NOARP alone makes it static; NUD_PERMANENT would make the bridge treat the MAC as its own
 * ("local") and deliver such frames up the stack instead of forwarding them to the port.
 */
export function fdbBody(index: number, mac: string): Buffer {
  const h = encodeNdMsg({ family: AF_BRIDGE, index, state: C.NUD_NOARP, flags: C.NTF_MASTER, type: 0 });
  return Buffer.concat([h, encodeAttrs([attr.bytes(C.NDA_LLADDR, macBytes(mac))])]);
}

export function fdbDumpBody(): Buffer {
  return encodeNdMsg({ family: AF_BRIDGE, index: 0, state: 0, flags: 0, type: 0 });
}

export function decodeFdb(payload: Buffer): FdbEntry {
  const h = decodeNdMsg(payload);
  const a = parseAttrs(payload.subarray(NDMSG_LEN));
  const ll = a.get(C.NDA_LLADDR);
  const e: FdbEntry = { index: h.index, mac: ll ? formatMac(ll) : '', state: h.state, flags: h.flags };
  const master = a.get(C.NDA_MASTER);
  if (master) e.master = master.readUInt32LE(0);
  return e;
}
