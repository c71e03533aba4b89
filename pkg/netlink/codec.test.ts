import { AF_BRIDGE, AF_INET, AF_INET6 } from '../sys/constants.js';
import * as C from './constants.js';
import {
  addrBody,
  bridgePortBody,
  decodeAddress,
  decodeLink,
  fdbBody,
  newVethBody,
  routeBody,
  setLinkBody,
} from './codec.js';
import {
  attr,
  decodeIfInfo,
  decodeNdMsg,
  decodeRtMsg,
  encodeAttrs,
  encodeIfInfo,
  IFINFOMSG_LEN,
  parseAttrs,
  RTMSG_LEN,
} from './message.js';

const str = (b: Buffer | undefined): string => (b ? b.toString('utf8', 0, b.indexOf(0)) : '');

describe('rtnetlink link requests', () => {
  it('creates a veth whose peer carries its name, MAC, MTU and target netns fd inside VETH_INFO_PEER', () => {
    const body = newVethBody({
      name: 'cnabc',
      mtu: 1400,
      master: 7,
      peer: { name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1400, netnsFd: 42 },
    });
    expect(decodeIfInfo(body)).toEqual({ family: 0, type: 0, index: 0, flags: 0, change: 0 });
    const a = parseAttrs(body.subarray(IFINFOMSG_LEN));
    expect(str(a.get(C.IFLA_IFNAME))).toBe('cnabc');
    expect(a.get(C.IFLA_MTU)?.readUInt32LE(0)).toBe(1400);
    expect(a.get(C.IFLA_MASTER)?.readUInt32LE(0)).toBe(7);
    const info = parseAttrs(a.get(C.IFLA_LINKINFO) ?? Buffer.alloc(0));
    expect(str(info.get(C.IFLA_INFO_KIND))).toBe('veth');
    const peer =
      parseAttrs(info.get(C.IFLA_INFO_DATA) ?? Buffer.alloc(0)).get(C.VETH_INFO_PEER) ?? Buffer.alloc(0);
    const pa = parseAttrs(peer.subarray(IFINFOMSG_LEN));
    expect(str(pa.get(C.IFLA_IFNAME))).toBe('eth0');
    expect([...(pa.get(C.IFLA_ADDRESS) ?? [])]).toEqual([2, 0, 0, 0, 0, 1]);
    expect(pa.get(C.IFLA_NET_NS_FD)?.readUInt32LE(0)).toBe(42);
  });

  it('sets up/down through ifi_change and the IPv6 address mode through IFLA_AF_SPEC', () => {
    const up = setLinkBody(5, { up: true, noIpv6LinkLocal: true });
    expect(decodeIfInfo(up)).toMatchObject({ index: 5, flags: C.IFF_UP, change: C.IFF_UP });
    const spec = parseAttrs(parseAttrs(up.subarray(IFINFOMSG_LEN)).get(C.IFLA_AF_SPEC) ?? Buffer.alloc(0));
    expect(parseAttrs(spec.get(AF_INET6) ?? Buffer.alloc(0)).get(C.IFLA_INET6_ADDR_GEN_MODE)?.[0]).toBe(
      C.IN6_ADDR_GEN_MODE_NONE,
    );
    expect(decodeIfInfo(setLinkBody(5, { mtu: 1500 }))).toMatchObject({ flags: 0, change: 0 });
    expect(decodeIfInfo(setLinkBody(5, { up: false }))).toMatchObject({ flags: 0, change: C.IFF_UP });
  });

  it('sets only the given bridge port flags, nested in IFLA_PROTINFO of an AF_BRIDGE message', () => {
    const body = bridgePortBody(9, { learning: false, mcastFlood: false, bcastFlood: true });
    expect(decodeIfInfo(body)).toMatchObject({ family: AF_BRIDGE, index: 9 });
    expect(body.readUInt16LE(IFINFOMSG_LEN + 2)).toBe(C.IFLA_PROTINFO | C.NLA_F_NESTED);
    const port = parseAttrs(parseAttrs(body.subarray(IFINFOMSG_LEN)).get(C.IFLA_PROTINFO) ?? Buffer.alloc(0));
    expect(Object.fromEntries([...port].map(([k, v]) => [k, v[0]]))).toEqual({
      [C.IFLA_BRPORT_LEARNING]: 0,
      [C.IFLA_BRPORT_MCAST_FLOOD]: 0,
      [C.IFLA_BRPORT_BCAST_FLOOD]: 1,
    });
  });

  it('decodes a link with its veth peer, master and bridge port flags', () => {
    const payload = Buffer.concat([
      encodeIfInfo({ index: 4, flags: C.IFF_UP }),
      encodeAttrs([
        attr.str(C.IFLA_IFNAME, 'cn0'),
        attr.u32(C.IFLA_MTU, 1400),
        attr.bytes(C.IFLA_ADDRESS, Buffer.from([2, 1, 2, 3, 4, 5])),
        attr.u32(C.IFLA_MASTER, 3),
        attr.u32(C.IFLA_LINK, 4), // a peer in another netns may have the same number
        attr.nested(C.IFLA_LINKINFO, [
          attr.str(C.IFLA_INFO_KIND, 'veth'),
          attr.str(C.IFLA_INFO_SLAVE_KIND, 'bridge'),
          attr.nested(5, [attr.u8(C.IFLA_BRPORT_LEARNING, 0), attr.u8(C.IFLA_BRPORT_UNICAST_FLOOD, 1)]),
        ]),
      ]),
    ]);
    expect(decodeLink(payload)).toEqual({
      index: 4,
      name: 'cn0',
      flags: C.IFF_UP,
      mtu: 1400,
      mac: '02:01:02:03:04:05',
      master: 3,
      link: 4,
      kind: 'veth',
      slaveKind: 'bridge',
      bridgePort: { learning: false, unicastFlood: true, mcastFlood: undefined, bcastFlood: undefined },
    });
  });
});

describe('rtnetlink address, route and FDB requests', () => {
  it('encodes an IPv4 address as ifaddrmsg + IFA_LOCAL + IFA_ADDRESS', () => {
    expect(addrBody(3, '10.0.0.1/24')).toEqual(
      Buffer.from([
        ...[AF_INET, 24, 0, 0, 3, 0, 0, 0],
        ...[8, 0, C.IFA_LOCAL, 0, 10, 0, 0, 1],
        ...[8, 0, C.IFA_ADDRESS, 0, 10, 0, 0, 1],
      ]),
    );
  });

  it('marks an IPv6 address NODAD in the header and IFA_FLAGS, and decodes it back', () => {
    const body = addrBody(3, 'fd44::101/64', { nodad: true });
    expect(body[2]).toBe(C.IFA_F_NODAD);
    expect(parseAttrs(body.subarray(8)).get(C.IFA_FLAGS)?.readUInt32LE(0)).toBe(C.IFA_F_NODAD);
    expect(decodeAddress(body)).toEqual({ index: 3, cidr: 'fd44::101/64', flags: C.IFA_F_NODAD, scope: 0 });
    expect(addrBody(3, '10.0.0.1/24', { nodad: true })[2]).toBe(0);
  });

  it('encodes a default route via a gateway, and a link-scope route with an MTU metric', () => {
    const def = routeBody({ dst: '0.0.0.0/0', gateway: '10.0.0.1', oif: 3 });
    expect(decodeRtMsg(def)).toMatchObject({
      family: AF_INET,
      dstLen: 0,
      table: C.RT_TABLE_MAIN,
      scope: C.RT_SCOPE_UNIVERSE,
    });
    const a = parseAttrs(def.subarray(RTMSG_LEN));
    expect(a.has(C.RTA_DST)).toBe(false);
    expect([...(a.get(C.RTA_GATEWAY) ?? [])]).toEqual([10, 0, 0, 1]);
    expect(a.get(C.RTA_OIF)?.readUInt32LE(0)).toBe(3);

    const link = routeBody({ dst: 'fd00:1::/48', oif: 3, mtu: 1300 });
    expect(decodeRtMsg(link)).toMatchObject({ family: AF_INET6, dstLen: 48, scope: C.RT_SCOPE_LINK });
    const metrics = parseAttrs(parseAttrs(link.subarray(RTMSG_LEN)).get(C.RTA_METRICS) ?? Buffer.alloc(0));
    expect(metrics.get(C.RTAX_MTU)?.readUInt32LE(0)).toBe(1300);
    expect(() => routeBody({ dst: '0.0.0.0/0', gateway: 'fd00::1' })).toThrow(/another family/);
  });

  it('makes FDB entries static on the master (NUD_NOARP, not NUD_PERMANENT which means local)', () => {
    const body = fdbBody(6, '02:00:00:00:00:09');
    expect(decodeNdMsg(body)).toEqual({
      family: AF_BRIDGE,
      index: 6,
      state: C.NUD_NOARP,
      flags: C.NTF_MASTER,
      type: 0,
    });
    expect([...(parseAttrs(body.subarray(12)).get(C.NDA_LLADDR) ?? [])]).toEqual([2, 0, 0, 0, 0, 9]);
  });
});
