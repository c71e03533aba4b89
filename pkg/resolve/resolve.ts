// Destination resolution for the send path (docs/membership.md, "Resolution"): expand a frame's
// destination into endpoints (groups recursively, de-duplicated, sender excluded) and partition them
// into local endpoint IDs and one batch per remote node. A Resolver belongs to one DirectoryIndex and
// caches per (sender, destination, source) until the directory changes and a new Resolver is made.
import { canonicalAddress, isSsmGroup } from '../netaddr/address.js';
import { bitsOf, contains, tryParseCidr, tryParseIp, type Cidr } from '../netaddr/ip.js';
import { ARP_REQUEST } from '../frame/build.js';
import { classifyDestination } from '../frame/classify.js';
import {
  ICMPV6_NEIGHBOR_ADVERT,
  ICMPV6_REDIRECT,
  ICMPV6_ROUTER_ADVERT,
  type ArpInfo,
  type NdpInfo,
  type ParsedFrame,
} from '../frame/ethernet.js';
import { err, fieldError, ok, type FieldError, type Result } from '../frame/result.js';
import type { GroupSpec, NodeRecord } from '../lookup/port.js';
import type { DirectoryIndex, IndexedEndpoint, IndexedNetwork } from './directory-index.js';
import { groupName, isGroupAddress } from './groups.js';
import { MAX_GROUP_DEPTH, reachableGroups, type NestingProblem } from './nesting.js';
import { LruMap } from './lru-map.js';
import { staticMemberAllowed } from './tenancy.js';

export interface RemoteBatch {
  readonly node: NodeRecord;
  readonly endpointIds: readonly number[];
}

export interface Delivery {
  /** Endpoint IDs on this node. */
  readonly local: readonly number[];
  /** One batch per remote node with destinations: that node gets one datagram (see pkg/wire). */
  readonly remote: readonly RemoteBatch[];
  /** Destinations on nodes absent from the directory (cannot be reached; count them). */
  readonly unreachable: number;
}

export type ResolveErrorCode =
  | 'unknown-destination'
  | 'broadcast-disabled'
  | 'multicast-disabled'
  | 'group-cycle'
  | 'group-too-deep'
  | 'spoofed-mac'
  | 'spoofed-ip'
  | 'rogue-router'
  | 'sender-not-allowed';

export interface ResolveError extends FieldError<ResolveErrorCode> {
  /** For group-cycle and group-too-deep: the chain of groups ("namespace/name"). */
  readonly path?: readonly string[];
}

export interface ResolveOptions {
  /** Deliver to the sender too, when it is a destination (default: never). */
  loopback?: boolean;
}

type Resolution = Result<Delivery, ResolveError>;

interface CompiledGroup {
  spec: GroupSpec;
  allowedSources: ReadonlySet<string> | undefined;
  /** Undefined: anyone may send. */
  allowedSenders: Cidr[] | undefined;
  endpointMembers: string[];
}

/** Entries of each memo (resolutions, SSM-ness of group addresses); keys are what senders choose. */
export const CACHE_LIMIT = 65536;
const EMPTY: Delivery = Object.freeze({ local: [], remote: [], unreachable: 0 });

export class Resolver {
  private readonly mark: Uint32Array;
  private generation = 0;
  private readonly found: IndexedEndpoint[] = [];
  private readonly cache = new Map<string, Resolution>();
  private readonly compiled = new Map<GroupSpec, CompiledGroup>();
  private readonly ssm: LruMap<string, boolean>;

  constructor(
    readonly index: DirectoryIndex,
    private readonly cacheLimit = CACHE_LIMIT,
  ) {
    this.mark = new Uint32Array(index.endpoints.length);
    this.ssm = new LruMap(cacheLimit);
  }

  /** Entries held by the memos, for tests and stats: each at most the cache limit. */
  get cacheSizes(): { resolutions: number; ssmGroups: number } {
    return { resolutions: this.cache.size, ssmGroups: this.ssm.size };
  }

  /** Resolves a parsed frame sent by `sender` (a local endpoint). `bytes` is the buffer `frame` was parsed from. */
  resolveFrame(
    sender: IndexedEndpoint,
    frame: ParsedFrame,
    bytes: Uint8Array,
    opts: ResolveOptions = {},
  ): Resolution {
    const net = sender.network;
    switch (classifyDestination(frame, bytes, net.subnetBroadcasts)) {
      case 'unicast':
        return this.resolveAddresses(sender, [frame.dstMac], undefined, opts);
      case 'broadcast':
        return net.spec.broadcast
          ? this.flood(sender, opts)
          : err(fieldError('broadcast-disabled', 'network', `broadcast is off in ${net.spec.name}`));
      case 'link-local-multicast':
        return this.flood(sender, opts);
      case 'ipv4-multicast':
      case 'ipv6-multicast':
        if (!net.spec.multicast)
          return err(fieldError('multicast-disabled', 'network', `multicast is off in ${net.spec.name}`));
        return this.resolveGroup(sender, frame.ip!.dst, frame.ip!.src, opts);
      case 'non-ip-multicast':
        // RFC 4541 floods non-IP multicast; a declared MAC group narrows it to its members.
        if (this.index.groups.byAddress(net.spec.name, frame.dstMac).length > 0)
          return this.resolveGroup(sender, frame.dstMac, undefined, opts);
        return net.spec.broadcast
          ? this.flood(sender, opts)
          : err(fieldError('broadcast-disabled', 'network', `broadcast is off in ${net.spec.name}`));
    }
  }

  /** Every endpoint of the sender's network except the sender (broadcast, link-local multicast). */
  flood(sender: IndexedEndpoint, opts: ResolveOptions = {}): Resolution {
    const key = `${sender.ordinal}|*|${opts.loopback ? 1 : 0}`;
    return this.cached(key, () => {
      this.begin();
      for (const e of sender.network.endpoints) this.add(e);
      return ok(this.partition(sender, opts));
    });
  }

  /** Members of `group` (canonical multicast IP or group MAC) that accept traffic from `source`. */
  resolveGroup(
    sender: IndexedEndpoint,
    group: string,
    source: string | undefined,
    opts: ResolveOptions = {},
  ): Resolution {
    const key = `${sender.ordinal}|${group}|${source ?? ''}|${opts.loopback ? 1 : 0}`;
    return this.cached(key, () => {
      const refused = this.refusedSender(sender, group);
      if (refused) return err(refused);
      this.begin();
      const e = this.expand(sender.network, group, source);
      return e ? err(e) : ok(this.partition(sender, opts));
    });
  }

  /** A declared group at this address that names its senders must name one of `sender`'s addresses. */
  private refusedSender(sender: IndexedEndpoint, group: string): ResolveError | undefined {
    for (const spec of this.index.groups.byAddress(sender.network.spec.name, group)) {
      const allowed = this.compile(spec).allowedSenders;
      if (!allowed) continue;
      const admitted = sender.ips.some((text) => {
        const ip = tryParseIp(text);
        return ip !== undefined && allowed.some((c) => contains(c, ip));
      });
      if (!admitted)
        return fieldError(
          'sender-not-allowed',
          'group.allowedSenders',
          `${sender.ips.join(', ') || sender.mac} may not send to ${groupName(spec)}`,
        );
    }
    return undefined;
  }

  /** A message to several individual and group addresses at once (not cached: the lab's message API). */
  resolveAddresses(
    sender: IndexedEndpoint,
    addresses: readonly string[],
    source: string | undefined,
    opts: ResolveOptions = {},
  ): Resolution {
    this.begin();
    const net = sender.network;
    for (const raw of addresses) {
      const a = canonicalAddress(raw);
      if (isGroupAddress(a)) {
        const e = this.expand(net, a, source);
        if (e) return err(e);
        continue;
      }
      const ep = this.index.endpointByAddress(net.spec.name, a);
      if (!ep)
        return err(
          fieldError('unknown-destination', 'destination', `${a} is not an endpoint of ${net.spec.name}`),
        );
      this.add(ep);
    }
    return ok(this.partition(sender, opts));
  }

  private cached(key: string, compute: () => Resolution): Resolution {
    const hit = this.cache.get(key);
    if (hit) return hit;
    if (this.cache.size >= this.cacheLimit) this.cache.clear();
    const r = compute();
    this.cache.set(key, r);
    return r;
  }

  private begin(): void {
    if (++this.generation === 0xffffffff) {
      this.mark.fill(0);
      this.generation = 1;
    }
    this.found.length = 0;
  }

  private add(e: IndexedEndpoint): void {
    if (this.mark[e.ordinal] === this.generation) return;
    this.mark[e.ordinal] = this.generation;
    this.found.push(e);
  }

  /** Adds the members of a group address: its joiners, and every group declared there, nested included. */
  private expand(net: IndexedNetwork, group: string, source: string | undefined): ResolveError | undefined {
    const table = this.index.groups;
    const roots = table.byAddress(net.spec.name, group);
    const problem = table.nesting.check(roots);
    if (problem) return nestingError(problem);
    this.addJoiners(net, group, source);
    const admits = (spec: GroupSpec): boolean => {
      const allowed = this.compile(spec).allowedSources;
      return !allowed || (source !== undefined && allowed.has(source));
    };
    for (const spec of reachableGroups(roots, (s) => table.children(s), admits)) {
      if (!admits(spec)) continue;
      for (const a of this.compile(spec).endpointMembers) {
        const e = this.index.endpointByAddress(net.spec.name, a);
        if (e && staticMemberAllowed(spec.namespace, e.record)) this.add(e);
      }
      for (const a of table.childAddresses(spec)) this.addJoiners(net, a, source);
    }
    return undefined;
  }

  /** The IGMP/MLD (and selector) members of a group address that accept `source`. */
  private addJoiners(net: IndexedNetwork, group: string, source: string | undefined): void {
    // SSM groups only deliver to INCLUDE memberships (RFC 4607 4.1: EXCLUDE reports are ignored).
    let ssm = this.ssm.get(group);
    if (ssm === undefined) this.ssm.set(group, (ssm = isSsmGroup(group)));
    for (const m of this.index.membershipsOf(net.spec.name, group)) {
      const admitted = m.include
        ? source !== undefined && m.sources.has(source)
        : !ssm && (source === undefined || !m.sources.has(source));
      if (admitted) this.add(m.endpoint);
    }
  }

  private compile(spec: GroupSpec): CompiledGroup {
    let g = this.compiled.get(spec);
    if (g) return g;
    const members = spec.staticMembers.map(canonicalAddress);
    g = {
      spec,
      allowedSources:
        spec.allowedSources.length > 0 ? new Set(spec.allowedSources.map(canonicalAddress)) : undefined,
      // A list whose entries are all unparsable admits nobody rather than everybody.
      allowedSenders: spec.allowedSenders?.length
        ? spec.allowedSenders.map(senderRange).filter((c): c is Cidr => c !== undefined)
        : undefined,
      endpointMembers: members.filter((a) => !isGroupAddress(a)),
    };
    this.compiled.set(spec, g);
    return g;
  }

  private partition(sender: IndexedEndpoint, opts: ResolveOptions): Delivery {
    if (this.found.length === 0) return EMPTY;
    const local: number[] = [];
    const byNode = new Map<string, number[]>();
    let unreachable = 0;
    for (const e of this.found) {
      if (e === sender && !opts.loopback) continue;
      if (e.node === this.index.localNode) {
        local.push(e.endpointId);
        continue;
      }
      const ids = byNode.get(e.node);
      if (ids) ids.push(e.endpointId);
      else if (this.index.nodes.has(e.node)) byNode.set(e.node, [e.endpointId]);
      else unreachable++;
    }
    const remote: RemoteBatch[] = [];
    for (const [name, endpointIds] of byNode) remote.push({ node: this.index.nodes.get(name)!, endpointIds });
    return { local, remote, unreachable };
  }
}

/**
 * Anti-spoofing: a frame's source MAC must be its endpoint's, and its source IP one of the endpoint's
 * (its own or a declared allowed address pair), the unspecified address (DHCP, DAD) or an IPv6
 * link-local address (which the directory doesn't list). Neighbour discovery is held to the same rule
 * as ARP: a neighbour advertisement's target is an address the sender may use, and a link-layer
 * address option is the sender's MAC (the parser refuses two that differ). An endpoint is never a
 * router: its router advertisements and redirects are dropped (RA guard, RFC 6105), as a rogue RA
 * would give every IPv6 neighbour a default route through it.
 */
export function checkSource(sender: IndexedEndpoint, frame: ParsedFrame): ResolveError | undefined {
  if (frame.srcMac !== sender.mac)
    return fieldError('spoofed-mac', 'ethernet.src', `${frame.srcMac} is not ${sender.mac}`);
  if (frame.arp && frame.arp.senderMac !== sender.mac)
    return fieldError('spoofed-mac', 'arp.sender_mac', `${frame.arp.senderMac} is not ${sender.mac}`);
  const ip = frame.ip?.src ?? (frame.arp ? frame.arp.senderIp : undefined);
  if (ip !== undefined && ip !== '0.0.0.0' && ip !== '::' && !mayUse(sender, ip))
    return fieldError(
      'spoofed-ip',
      frame.arp ? 'arp.sender_ip' : 'ip.src',
      `${ip} does not belong to endpoint ${sender.endpointId}`,
    );
  return frame.ndp && checkNeighbourDiscovery(sender, frame.ndp);
}

/** An address `sender` may send from or claim: its own, an allowed one, or IPv6 link-local. */
function mayUse(sender: IndexedEndpoint, ip: string): boolean {
  return sender.ips.includes(ip) || sender.allowedAddresses.has(ip) || /^fe[89ab][0-9a-f]:/.test(ip);
}

function checkNeighbourDiscovery(sender: IndexedEndpoint, nd: NdpInfo): ResolveError | undefined {
  if (nd.type === ICMPV6_ROUTER_ADVERT || nd.type === ICMPV6_REDIRECT)
    return fieldError(
      'rogue-router',
      'icmpv6.type',
      `${nd.type === ICMPV6_REDIRECT ? 'a redirect' : 'a router advertisement'} from endpoint ${sender.endpointId}, which is no router`,
    );
  if (nd.linkLayerAddress !== undefined && nd.linkLayerAddress !== sender.mac)
    return fieldError('spoofed-mac', 'ndp.link_layer_address', `${nd.linkLayerAddress} is not ${sender.mac}`);
  if (nd.type === ICMPV6_NEIGHBOR_ADVERT && nd.target !== undefined && !mayUse(sender, nd.target))
    return fieldError(
      'spoofed-ip',
      'ndp.target',
      `${nd.target} does not belong to endpoint ${sender.endpointId}`,
    );
  return undefined;
}

/** The endpoint an ARP request asks for, when the agent can answer it (not gratuitous, not the sender). */
export function arpTarget(
  index: DirectoryIndex,
  sender: IndexedEndpoint,
  arp: ArpInfo,
): IndexedEndpoint | undefined {
  if (arp.op !== ARP_REQUEST || arp.targetIp === arp.senderIp) return undefined;
  if (sender.network.spec.arpProxy === false) return undefined;
  const e = index.endpointByAddress(sender.network.spec.name, arp.targetIp);
  return e === sender ? undefined : e;
}

export interface ReceiveTargets {
  /** Local endpoints to deliver to, each once. */
  deliver: IndexedEndpoint[];
  /** IDs that are not local endpoints of the datagram's network (dropped and counted). */
  unknownIds: number;
  duplicateIds: number;
  networkKnown: boolean;
}

/** Receive path: which listed IDs are local endpoints of the datagram's network. Anything else is dropped. */
export function receiveTargets(
  index: DirectoryIndex,
  networkId: number,
  ids: readonly number[],
): ReceiveTargets {
  const net = index.networksById.get(networkId);
  if (!net) return { deliver: [], unknownIds: ids.length, duplicateIds: 0, networkKnown: false };
  const deliver: IndexedEndpoint[] = [];
  let unknownIds = 0;
  let duplicateIds = 0;
  for (const id of ids) {
    const e = index.localEndpoint(id);
    if (!e || e.network !== net) unknownIds++;
    else if (deliver.includes(e)) duplicateIds++;
    else deliver.push(e);
  }
  return { deliver, unknownIds, duplicateIds, networkKnown: true };
}

/** A group rejected by the nesting rule (nesting.ts), as the reason its traffic is dropped. */
function nestingError(p: NestingProblem<GroupSpec>): ResolveError {
  const names = p.path.map(groupName);
  return p.code === 'cycle'
    ? { ...fieldError('group-cycle', 'group', `nesting cycle: ${names.join(' -> ')}`), path: names }
    : {
        ...fieldError(
          'group-too-deep',
          'group',
          `nesting deeper than ${MAX_GROUP_DEPTH}: ${names.join(' -> ')}`,
        ),
        path: names,
      };
}

/** An allowedSenders entry as a range (a plain IP is a host route); undefined when unparsable. */
function senderRange(entry: string): Cidr | undefined {
  if (entry.includes('/')) return tryParseCidr(entry);
  const ip = tryParseIp(entry);
  return ip && { ip, prefix: bitsOf(ip.family) };
}
