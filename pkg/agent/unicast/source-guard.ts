// Anti-spoofing for what the kernel switches: unicast between endpoints (bridge and VXLAN) and, in
// primary mode, everything a pod routes through its node. The data plane checks the multicast,
// broadcast and ARP frames it forwards itself (resolve.ts checkSource); this guard applies the same
// rule to every frame a local endpoint's port hands the node's bridge, before the bridge (or
// br_netfilter, or routing) sees it:
// - the source MAC is the endpoint's;
// - the source IPv4 (and an ARP sender's IP and MAC) is one of the endpoint's addresses or declared
//   allowed address pairs, or the unspecified address (DHCP, ARP probes);
// - the source IPv6 is one of those, the unspecified address (DAD) or link-local (which the directory
//   does not list).
// An nftables table of the agent's own (`bridge castnet`) holds (port, MAC[, address]) tuples of the
// ready local endpoints; frames that fail are dropped and counted (counter `spoofed`). Ports that are
// not a ready endpoint's (the VXLAN port, a port being wired) are not checked. Capture by the data
// plane happens before the bridge's hooks, so multicast keeps its own, finer-counted check.
// VLAN-tagged frames are not checked here (a pod's kernel drops tagged frames it has no VLAN for).
import { isIPv4 } from 'node:net';
import type { Disposable } from '../../base/lifecycle.js';
import type { Endpoint, EndpointSource } from '../../endpoint/table.js';
import type { Logger } from '../../log/log.js';
import { canonicalAddress } from '../../netaddr/address.js';
import { NftTable, removeNftTable, replaceTable } from '../../sys/nft-table.js';

export const GUARD_TABLE = 'bridge castnet';
/** The named nftables counter of the frames the guard dropped. */
export const GUARD_COUNTER = 'spoofed';

/** The nft batch that (re)creates the guard's table with its sets empty: nothing is checked yet. */
export function guardTableBatch(): string {
  const drop = `counter name "${GUARD_COUNTER}" drop`;
  return [
    ...replaceTable(GUARD_TABLE),
    `table ${GUARD_TABLE} {`,
    `  counter ${GUARD_COUNTER} { }`,
    '  set ports { type ifname; }',
    '  set macs { type ifname . ether_addr; }',
    '  set src4 { type ifname . ether_addr . ipv4_addr; }',
    '  set src6 { type ifname . ether_addr . ipv6_addr; }',
    '  chain prerouting {',
    '    type filter hook prerouting priority filter; policy accept;',
    '    iifname != @ports accept',
    `    iifname . ether saddr != @macs ${drop}`,
    `    ether type ip ip saddr != 0.0.0.0 iifname . ether saddr . ip saddr != @src4 ${drop}`,
    `    ether type arp arp saddr ip != 0.0.0.0 iifname . arp saddr ether . arp saddr ip != @src4 ${drop}`,
    `    ether type ip6 ip6 saddr != { ::, fe80::/10 } iifname . ether saddr . ip6 saddr != @src6 ${drop}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** What the guard lets each port send from: its MAC, and its addresses with the allowed ones. Pure. */
export function guardEntries(
  endpoints: readonly Pick<Endpoint, 'hostIfname' | 'mac' | 'ips' | 'allowedAddresses'>[],
): {
  ports: string[];
  macs: string[];
  src4: string[];
  src6: string[];
} {
  const out = { ports: [] as string[], macs: [] as string[], src4: [] as string[], src6: [] as string[] };
  for (const e of endpoints) {
    const port = JSON.stringify(e.hostIfname);
    const mac = e.mac.toLowerCase();
    out.ports.push(port);
    out.macs.push(`${port} . ${mac}`);
    const addresses = new Set([...e.ips.map((a) => a.split('/')[0]!), ...(e.allowedAddresses ?? [])]);
    for (const a of [...addresses].map(canonicalAddress))
      (isIPv4(a) ? out.src4 : out.src6).push(`${port} . ${mac} . ${a}`);
  }
  for (const list of Object.values(out)) list.sort();
  return out;
}

/** The nft batch that replaces the guard's sets with `entries`, atomically. Pure. */
export function guardSetsBatch(entries: ReturnType<typeof guardEntries>): string {
  const lines: string[] = [];
  for (const [set, elements] of Object.entries(entries)) {
    lines.push(`flush set ${GUARD_TABLE} ${set}`);
    if (elements.length) lines.push(`add element ${GUARD_TABLE} ${set} { ${elements.join(', ')} }`);
  }
  return lines.join('\n') + '\n';
}

/** Deletes the guard's table (uninstall); false when there is none, or no nft. */
export const removeSourceGuard = (netnsPath?: string): Promise<boolean> =>
  removeNftTable(GUARD_TABLE, netnsPath);

export interface SourceGuardOptions {
  endpoints: EndpointSource;
  log: Logger;
  /** The nft binary (tests). */
  nft?: string;
}

export class SourceGuard implements Disposable {
  private readonly table: NftTable;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly o: SourceGuardOptions) {
    this.table = new NftTable({
      table: GUARD_TABLE,
      create: guardTableBatch(),
      without: "endpoints' unicast sources are not checked",
      log: o.log,
      ...(o.nft ? { nft: o.nft } : {}),
    });
  }

  /** Installs the table and follows the ready endpoints from now on. */
  async start(): Promise<void> {
    await this.table.start();
    this.unsubscribe = this.o.endpoints.subscribe(() => this.sync());
    this.sync();
  }

  /** Resolves once every change so far is applied. */
  settled(): Promise<void> {
    return this.table.settled();
  }

  /** The table's state and sync counts (the drops: `nft list counter bridge castnet spoofed`). */
  stats(): Record<string, unknown> {
    return this.table.stats();
  }

  dispose(): Promise<void> {
    this.unsubscribe?.();
    return this.table.dispose();
  }

  private sync(): void {
    this.table.sync(guardSetsBatch(guardEntries(this.o.endpoints.endpoints())));
  }
}
