// Anti-spoofing for what the kernel switches: unicast between endpoints (bridge and VXLAN) and, in
// primary mode, everything a pod routes through its node. The data plane checks the multicast,
// broadcast, ARP and neighbour discovery frames it forwards itself (resolve.ts checkSource); this
// guard applies the same rule to every frame a local endpoint's port hands the node's bridge, before
// the bridge (or br_netfilter, or routing) sees it:
// - the source MAC is the endpoint's;
// - the source IPv4 (and an ARP sender's IP and MAC) is one of the endpoint's addresses or declared
//   allowed address pairs, or the unspecified address (DHCP, ARP probes);
// - the source IPv6 is one of those, the unspecified address (DAD) or link-local (which the directory
//   does not list);
// - a neighbour advertisement's target is one of those or link-local, and a router or neighbour
//   solicitation's or a neighbour advertisement's link-layer address option, which must come first
//   among its options, is the endpoint's MAC (the ND analogue of the ARP sender check: otherwise one
//   pod poisons its neighbours' caches for another's address); no fragmented neighbour discovery;
// - no router advertisement or redirect (RA guard, RFC 6105): an endpoint is never a router.
// An nftables table of the agent's own (`bridge castnet`) holds (port, MAC[, address]) tuples of the
// ready local endpoints; frames that fail are dropped and counted (counter `spoofed`). Ports that are
// not a ready endpoint's (the VXLAN port, a port being wired) are not checked. Capture by the data
// plane happens before the bridge's hooks, so multicast keeps its own, finer-counted check.
// Matching is on `meta protocol`, not the Ethernet type: the kernel moves a frame's VLAN tag into the
// packet's metadata before the bridge, so a tagged frame is checked like an untagged one. A second
// tag (QinQ) would hide the frame from these rules, so double-tagged unicast is dropped.
import { isIPv4 } from 'node:net';
import type { Endpoint, EndpointSource } from '../../endpoint/table.js';
import type { Logger } from '../../log/log.js';
import { canonicalAddress, parseIPv6, parseMac } from '../../netaddr/address.js';
import { NftTableOwner, removeNftTable, replaceSetsBatch, replaceTable } from '../../sys/nft-table.js';

export const GUARD_TABLE = 'bridge castnet';
/** The named nftables counter of the frames the guard dropped. */
export const GUARD_COUNTER = 'spoofed';

// Raw offsets into an ICMPv6 neighbour solicitation or advertisement (bits from the ICMPv6 header;
// nftables 1.0 has no `icmpv6 taddr`): the target address and its first 16 bits, the first option's
// type and length, and a link-layer address option's MAC.
const ND_TARGET = '@th,64,128';
const ND_TARGET_PREFIX = '@th,64,16';
const ND_FIRST_OPTION = '@th,192,16';
const ND_OPTION_MAC = '@th,208,48';
// A router solicitation's options follow its 8-byte fixed part.
const RS_FIRST_OPTION = '@th,64,16';
const RS_OPTION_MAC = '@th,80,48';

/** The nft batch that (re)creates the guard's table with its sets empty: nothing is checked yet. */
export function guardTableBatch(): string {
  const drop = `counter name "${GUARD_COUNTER}" drop`;
  const nd = 'meta protocol ip6 icmpv6 type';
  return [
    ...replaceTable(GUARD_TABLE),
    `table ${GUARD_TABLE} {`,
    `  counter ${GUARD_COUNTER} { }`,
    '  set ports { type ifname; }',
    '  set macs { type ifname . ether_addr; }',
    '  set src4 { type ifname . ether_addr . ipv4_addr; }',
    '  set src6 { type ifname . ether_addr . ipv6_addr; }',
    `  set nd6 { typeof iifname . ${ND_TARGET}; }`,
    `  set lladdr { typeof iifname . ${ND_OPTION_MAC}; }`,
    '  chain prerouting {',
    '    type filter hook prerouting priority filter; policy accept;',
    '    iifname != @ports accept',
    // Group-addressed frames are the data plane's, which checks inside both tags.
    `    meta protocol { 8021q, 8021ad } meta pkttype != { broadcast, multicast } ${drop}`,
    `    iifname . ether saddr != @macs ${drop}`,
    `    meta protocol ip ip saddr != 0.0.0.0 iifname . ether saddr . ip saddr != @src4 ${drop}`,
    `    meta protocol arp arp saddr ip != 0.0.0.0 iifname . arp saddr ether . arp saddr ip != @src4 ${drop}`,
    `    meta protocol ip6 ip6 saddr != { ::, fe80::/10 } iifname . ether saddr . ip6 saddr != @src6 ${drop}`,
    `    ${nd} { nd-router-advert, nd-redirect } ${drop}`,
    // RFC 6980: neighbour discovery is never fragmented; a fragment would hide its options from here.
    `    meta protocol ip6 exthdr frag exists icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ${drop}`,
    `    ${nd} nd-neighbor-advert ${ND_TARGET_PREFIX} & 0xffc0 != 0xfe80 iifname . ${ND_TARGET} != @nd6 ${drop}`,
    // A message without options reads past its end here, which nft treats as no match: allowed.
    `    ${nd} nd-neighbor-advert ${ND_FIRST_OPTION} != 0x0201 ${drop}`,
    `    ${nd} nd-neighbor-advert iifname . ${ND_OPTION_MAC} != @lladdr ${drop}`,
    // From the unspecified address (DAD) a solicitation carries no link-layer option (a nonce, maybe).
    `    ${nd} nd-neighbor-solicit ip6 saddr != :: ${ND_FIRST_OPTION} != 0x0101 ${drop}`,
    `    ${nd} nd-neighbor-solicit ip6 saddr != :: iifname . ${ND_OPTION_MAC} != @lladdr ${drop}`,
    `    ${nd} nd-router-solicit ip6 saddr != :: ${RS_FIRST_OPTION} != 0x0101 ${drop}`,
    `    ${nd} nd-router-solicit ip6 saddr != :: iifname . ${RS_OPTION_MAC} != @lladdr ${drop}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** `bytes` as one hex integer, as nftables reads a raw payload. */
const hexInteger = (bytes: Iterable<number>): string =>
  '0x' + [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');

/** What the guard lets each port send from: its MAC, and its addresses with the allowed ones. Pure. */
export function guardEntries(
  endpoints: readonly Pick<Endpoint, 'hostIfname' | 'mac' | 'ips' | 'allowedAddresses'>[],
): Record<'ports' | 'macs' | 'src4' | 'src6' | 'nd6' | 'lladdr', string[]> {
  const out = {
    ports: [] as string[],
    macs: [] as string[],
    src4: [] as string[],
    src6: [] as string[],
    nd6: [] as string[],
    lladdr: [] as string[],
  };
  for (const e of endpoints) {
    const port = JSON.stringify(e.hostIfname);
    const mac = e.mac.toLowerCase();
    out.ports.push(port);
    out.macs.push(`${port} . ${mac}`);
    out.lladdr.push(`${port} . ${hexInteger(parseMac(mac)!)}`);
    const addresses = new Set([...e.ips.map((a) => a.split('/')[0]!), ...(e.allowedAddresses ?? [])]);
    for (const a of [...addresses].map(canonicalAddress)) {
      if (isIPv4(a)) {
        out.src4.push(`${port} . ${mac} . ${a}`);
        continue;
      }
      out.src6.push(`${port} . ${mac} . ${a}`);
      out.nd6.push(`${port} . ${hexInteger(parseIPv6(a)!)}`);
    }
  }
  for (const list of Object.values(out)) list.sort();
  return out;
}

/** The nft batch that replaces the guard's sets with `entries`, atomically. Pure. */
export const guardSetsBatch = (entries: ReturnType<typeof guardEntries>): string =>
  replaceSetsBatch(GUARD_TABLE, entries);

/** Deletes the guard's table (uninstall); false when there is none, or no nft. */
export const removeSourceGuard = (netnsPath?: string): Promise<boolean> =>
  removeNftTable(GUARD_TABLE, netnsPath);

export interface SourceGuardOptions {
  endpoints: EndpointSource;
  log: Logger;
  /** The nft binary (tests). */
  nft?: string;
}

/** The guard; its drops: `nft list counter bridge castnet spoofed` on the node. */
export class SourceGuard extends NftTableOwner {
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly o: SourceGuardOptions) {
    super({
      table: GUARD_TABLE,
      create: guardTableBatch(),
      without: "endpoints' unicast sources are not checked",
      log: o.log,
      ...(o.nft ? { nft: o.nft } : {}),
    });
  }

  /** Installs the table and follows the ready endpoints from now on. */
  override async start(): Promise<void> {
    await super.start();
    this.unsubscribe = this.o.endpoints.subscribe(() => this.sync());
    this.sync();
  }

  override dispose(): Promise<void> {
    this.unsubscribe?.();
    return super.dispose();
  }

  private sync(): void {
    this.table.sync(guardSetsBatch(guardEntries(this.o.endpoints.endpoints())));
  }
}
