// A small rtnetlink client: links, veth pairs, bridges, bridge ports, addresses, routes, FDB.
// Each method is one kernel round trip; errors name the operation and the object.
import { check, libc } from '../sys/libc.js';
import {
  Address,
  addrBody,
  addrDumpBody,
  BridgeOptions,
  bridgeOptionsBody,
  BridgePortFlags,
  bridgePortBody,
  BridgeSpec,
  decodeAddress,
  decodeFdb,
  decodeLink,
  decodeRoute,
  FdbEntry,
  fdbBody,
  fdbDumpBody,
  Link,
  linkByIndexBody,
  linkByNameBody,
  LinkSettings,
  newBridgeBody,
  newVethBody,
  Route,
  routeBody,
  routeDumpBody,
  setLinkBody,
  VethSpec,
} from './codec.js';
import {
  AF_INET,
  AF_INET6,
  EADDRNOTAVAIL,
  EEXIST,
  ENODEV,
  ENOENT,
  ESRCH,
  O_CLOEXEC,
  O_RDONLY,
} from '../sys/constants.js';
import * as C from './constants.js';
import { NetlinkError, NetlinkSocket } from './socket.js';

export class Rtnl {
  private constructor(
    private readonly sock: NetlinkSocket,
    private readonly netnsPath?: string,
  ) {}

  /** A client for the current network namespace, or for the one at `netnsPath`. */
  static open(netnsPath?: string): Rtnl {
    return new Rtnl(NetlinkSocket.open(netnsPath), netnsPath);
  }

  dispose(): void {
    this.sock.dispose();
  }

  // Links

  listLinks(): Link[] {
    return this.sock.dump('list links', C.RTM_GETLINK, linkByIndexBody(0)).map((m) => decodeLink(m.payload));
  }

  /** The link called `name`, or undefined when there is none. */
  linkByName(name: string): Link | undefined {
    return this.getLink(`get link ${JSON.stringify(name)}`, linkByNameBody(name));
  }

  linkByIndex(index: number): Link | undefined {
    return this.getLink(`get link #${index}`, linkByIndexBody(index));
  }

  private getLink(what: string, body: Buffer): Link | undefined {
    try {
      const m = this.sock.get(what, C.RTM_GETLINK, body);
      return m && decodeLink(m.payload);
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return undefined;
      throw e;
    }
  }

  /** The link called `name`; throws when it does not exist. */
  mustLink(name: string): Link {
    const l = this.linkByName(name);
    if (!l) throw new Error(`link ${JSON.stringify(name)} not found`);
    return l;
  }

  /**
   * Creates a veth pair and returns this side. With `peer.netns` (a namespace path) the peer is born in
   * that namespace, so it never shows up (nor clashes by name) in this one. The peer stays down.
   */
  createVeth(v: Omit<VethSpec, 'peer'> & { peer: VethSpec['peer'] & { netns?: string } }): Link {
    const what = `create veth ${JSON.stringify(v.name)} with peer ${JSON.stringify(v.peer.name)}`;
    const fd = v.peer.netns
      ? check(`open ${v.peer.netns}`, libc().open(v.peer.netns, O_RDONLY | O_CLOEXEC))
      : -1;
    try {
      const peer = { ...v.peer, netnsFd: fd >= 0 ? fd : undefined };
      const body = newVethBody({ ...v, peer });
      this.sock.request(what, C.RTM_NEWLINK, C.NLM_F_CREATE | C.NLM_F_EXCL, body);
    } finally {
      if (fd >= 0) libc().close(fd);
    }
    return this.finishNewLink(v);
  }

  createBridge(b: BridgeSpec): Link {
    const body = newBridgeBody(b);
    this.sock.request(
      `create bridge ${JSON.stringify(b.name)}`,
      C.RTM_NEWLINK,
      C.NLM_F_CREATE | C.NLM_F_EXCL,
      body,
    );
    return this.finishNewLink(b);
  }

  /** Applies what the kernel refuses at creation (the IPv6 address mode), then brings the link up. */
  private finishNewLink(s: LinkSettings & { name: string }): Link {
    const link = this.mustLink(s.name);
    if (!s.noIpv6LinkLocal && !s.up) return link;
    if (s.noIpv6LinkLocal) this.setLink(link.index, { noIpv6LinkLocal: true });
    if (!s.up) return link;
    this.setLink(link.index, { up: true });
    return { ...link, flags: link.flags | C.IFF_UP };
  }

  /** Creates the bridge unless a link of that name exists; returns it either way. */
  ensureBridge(b: BridgeSpec): Link {
    const existing = this.linkByName(b.name);
    if (existing) {
      if (existing.kind !== 'bridge')
        throw new Error(
          `link ${JSON.stringify(b.name)} exists but is a ${existing.kind ?? 'plain'} link, not a bridge`,
        );
      if (b.up && !(existing.flags & C.IFF_UP)) this.setLink(existing.index, { up: true });
      return existing;
    }
    try {
      return this.createBridge(b);
    } catch (e) {
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
      return this.mustLink(b.name);
    }
  }

  setLink(index: number, s: LinkSettings): void {
    this.sock.request(`set link #${index} ${JSON.stringify(s)}`, C.RTM_NEWLINK, 0, setLinkBody(index, s));
  }

  /** Deletes a link; returns false when it was already gone. */
  deleteLink(index: number, label = `#${index}`): boolean {
    try {
      this.sock.request(`delete link ${label}`, C.RTM_DELLINK, 0, linkByIndexBody(index));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return false;
      throw e;
    }
  }

  /**
   * deleteLinkByName() without holding the event loop: unregistering a link waits for RCU grace
   * periods (about 15 ms for a veth pair here). Uses a socket of its own, so other calls may proceed.
   */
  async deleteLinkByNameAsync(name: string): Promise<boolean> {
    const sock = NetlinkSocket.open(this.netnsPath);
    try {
      await sock.requestAsync(`delete link ${JSON.stringify(name)}`, C.RTM_DELLINK, 0, linkByNameBody(name));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return false;
      throw e;
    } finally {
      sock.dispose();
    }
  }

  deleteLinkByName(name: string): boolean {
    try {
      this.sock.request(`delete link ${JSON.stringify(name)}`, C.RTM_DELLINK, 0, linkByNameBody(name));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return false;
      throw e;
    }
  }

  /** Changes options of the bridge `index` (multicast snooping, STP). */
  setBridgeOptions(index: number, o: BridgeOptions): void {
    this.sock.request(
      `set bridge #${index} ${JSON.stringify(o)}`,
      C.RTM_NEWLINK,
      0,
      bridgeOptionsBody(index, o),
    );
  }

  /** Sets bridge port flags (learning, unicast/multicast/broadcast flooding) on an enslaved link. */
  setBridgePort(index: number, f: BridgePortFlags): void {
    this.sock.request(
      `set bridge port #${index} ${JSON.stringify(f)}`,
      C.RTM_SETLINK,
      0,
      bridgePortBody(index, f),
    );
  }

  // Addresses

  addAddress(index: number, cidr: string, opts: { nodad?: boolean } = {}): void {
    this.sock.request(
      `add address ${cidr} to link #${index}`,
      C.RTM_NEWADDR,
      C.NLM_F_CREATE | C.NLM_F_REPLACE,
      addrBody(index, cidr, opts),
    );
  }

  /** Removes an address; returns false when the link did not have it. */
  deleteAddress(index: number, cidr: string): boolean {
    try {
      this.sock.request(
        `delete address ${cidr} from link #${index}`,
        C.RTM_DELADDR,
        0,
        addrBody(index, cidr),
      );
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && (e.errno === EADDRNOTAVAIL || e.errno === ENODEV)) return false;
      throw e;
    }
  }

  /** Addresses of every link, or of link `index`. */
  listAddresses(index?: number): Address[] {
    const all = this.sock
      .dump('list addresses', C.RTM_GETADDR, addrDumpBody())
      .map((m) => decodeAddress(m.payload));
    return index === undefined ? all : all.filter((a) => a.index === index);
  }

  // Routes

  addRoute(r: Route): void {
    this.sock.request(
      `add route ${JSON.stringify(r)}`,
      C.RTM_NEWROUTE,
      C.NLM_F_CREATE | C.NLM_F_EXCL,
      routeBody(r),
    );
  }

  deleteRoute(r: Route): boolean {
    try {
      this.sock.request(`delete route ${JSON.stringify(r)}`, C.RTM_DELROUTE, 0, routeBody(r));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ESRCH) return false;
      throw e;
    }
  }

  /** Routes of the main table for one family (4 or 6). */
  listRoutes(family: 4 | 6): Route[] {
    const af = family === 4 ? AF_INET : AF_INET6;
    return this.sock
      .dump(`list IPv${family} routes`, C.RTM_GETROUTE, routeDumpBody(af))
      .map((m) => decodeRoute(m.payload))
      .filter((r) => r.table === C.RT_TABLE_MAIN);
  }

  // Bridge FDB

  /** Adds (or replaces) a static FDB entry on bridge port `index` for `mac`. */
  addFdb(index: number, mac: string): void {
    this.sock.request(
      `add FDB entry ${mac} on port #${index}`,
      C.RTM_NEWNEIGH,
      C.NLM_F_CREATE | C.NLM_F_REPLACE,
      fdbBody(index, mac),
    );
  }

  deleteFdb(index: number, mac: string): boolean {
    try {
      this.sock.request(`delete FDB entry ${mac} on port #${index}`, C.RTM_DELNEIGH, 0, fdbBody(index, mac));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && (e.errno === ENOENT || e.errno === ENODEV)) return false;
      throw e;
    }
  }

  listFdb(): FdbEntry[] {
    return this.sock.dump('list FDB', C.RTM_GETNEIGH, fdbDumpBody()).map((m) => decodeFdb(m.payload));
  }
}
