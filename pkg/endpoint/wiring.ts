// The kernel side of an endpoint: a veth pair between the node's per-network bridge and the pod, the
// bridge port's settings, and the pod interface's addresses and routes. Each function is one step of
// ADD, so the manager can record progress (and tests can crash it) between them.
import type { CniRoute } from '../cni/types.js';
import { parseCidr } from '../netaddr/ip.js';
import type { BridgePortFlags, Link } from '../netlink/codec.js';
import type { Rtnl } from '../netlink/rtnl.js';

/** The node's bridge for a network, created (up, without IPv6 link-local address) when missing. */
export function ensureNetworkBridge(host: Rtnl, name: string): Link {
  return host.ensureBridge({ name, up: true, noIpv6LinkLocal: true });
}

export interface VethPlan {
  bridgeIndex: number;
  hostIfname: string;
  netns: string;
  ifname: string;
  mac: string;
  mtu: number;
}

/** The veth pair: host side enslaved to the bridge, the peer born in the pod's netns as `ifname`. */
export function createVethPair(host: Rtnl, p: VethPlan): Link {
  return host.createVeth({
    name: p.hostIfname,
    mtu: p.mtu,
    master: p.bridgeIndex,
    noIpv6LinkLocal: true,
    peer: { name: p.ifname, mac: p.mac, mtu: p.mtu, netns: p.netns },
  });
}

/**
 * The bridge port of an endpoint: no learning (a static FDB entry says where its MAC lives, so a
 * spoofed source cannot steal another endpoint's traffic), no unknown-unicast flooding (a frame to
 * a MAC the bridge does not know, say one sent by a host on the underlay through VXLAN, reaches no
 * endpoint), then up.
 */
export function configureHostPort(host: Rtnl, hostIndex: number, mac: string): void {
  host.setBridgePort(hostIndex, { learning: false, unicastFlood: false });
  host.addFdb(hostIndex, mac);
  host.setLink(hostIndex, { up: true });
}

/** IGMP/MLD snooping of a network's bridge (the data plane turns it off to own multicast). */
export function setBridgeSnooping(host: Rtnl, bridge: string, on: boolean): void {
  host.setBridgeOptions(host.mustLink(bridge).index, { mcastSnooping: on });
}

/** Flooding of multicast/broadcast to an endpoint's port; the data plane turns these off to take over. */
export function setPortFlooding(host: Rtnl, hostIfname: string, flags: BridgePortFlags): void {
  host.setBridgePort(host.mustLink(hostIfname).index, flags);
}

/**
 * The pod interface: up, its addresses (IPv6 without DAD: the MAC is unique on the segment), then the
 * routes; a route without a gateway uses the gateway of its family's address, as the reference plugins do.
 */
export function configureContainer(
  pod: Rtnl,
  ifname: string,
  ips: { address: string; gateway?: string }[],
  routes: CniRoute[],
): Link {
  const link = pod.mustLink(ifname);
  pod.setLink(link.index, { up: true });
  for (const ip of ips) pod.addAddress(link.index, ip.address, { nodad: true });
  const gatewayOf = (family: number): string | undefined =>
    ips.find((ip) => ip.gateway && parseCidr(ip.address).ip.family === family)?.gateway;
  for (const r of routes) {
    const gateway = r.gw ?? gatewayOf(parseCidr(r.dst).ip.family);
    pod.addRoute({
      dst: r.dst,
      gateway,
      oif: link.index,
      mtu: r.mtu,
      priority: r.priority,
      table: r.table,
      scope: r.scope,
    });
  }
  return link;
}

/**
 * The pod end of an endpoint's veth, found from the host side (IFLA_LINK), not by name: KubeVirt's
 * bridge binding renames it and gives its name to another link.
 */
export function findPodEnd(pod: Rtnl, hostEnd: Link): Link | undefined {
  if (hostEnd.link === undefined) return undefined;
  const l = pod.linkByIndex(hostEnd.link);
  return l && l.kind === 'veth' && l.link === hostEnd.index ? l : undefined;
}
