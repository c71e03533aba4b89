// Primary mode: pods reach beyond the cluster network. A pod's address is routable only inside the
// cluster (every node routes the network's subnets into its bridge; nothing else does), so a packet a
// pod sends to any other destination leaves the node with the node's own address as its source
// (masquerade), as ip-masq-agent, Calico's natOutgoing and flannel's --ip-masq do. Traffic between
// pods, and to the destinations the user lists (`--non-masquerade-cidr`: networks that route the pod
// subnets back themselves), keeps the pod's address.
// An nftables table of the agent's own (`ip castnet-nat`), its sets following the network's subnets.
// IPv4 only, as the primary network's gateway is.
import type { Directory } from '../../lookup/port.js';
import type { Logger } from '../../log/log.js';
import { ipv4Subnets } from '../../endpoint/primary.js';
import { tryParseCidr } from '../../netaddr/ip.js';
import { NftTableOwner, removeNftTable, replaceSetsBatch, replaceTable } from '../../sys/nft-table.js';

export const EGRESS_NAT_TABLE = 'ip castnet-nat';
/** The named counter of the connections masqueraded (their first packets). */
export const EGRESS_NAT_COUNTER = 'masqueraded';

/** The nft batch that (re)creates the table with its sets empty: nothing is masqueraded yet. */
export function egressNatTableBatch(): string {
  return [
    ...replaceTable(EGRESS_NAT_TABLE),
    `table ${EGRESS_NAT_TABLE} {`,
    `  counter ${EGRESS_NAT_COUNTER} { }`,
    '  set pods { type ipv4_addr; flags interval; }',
    '  set keep { type ipv4_addr; flags interval; }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    ip saddr != @pods accept',
    '    ip daddr @pods accept',
    '    ip daddr @keep accept',
    `    counter name "${EGRESS_NAT_COUNTER}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The `--non-masquerade-cidr` values, checked: IPv4 CIDRs (or addresses). Throws naming the flag and
 * the value. Pure.
 */
export function parseNonMasqueradeCidrs(values: readonly string[]): string[] {
  return values.map((v) => {
    const cidr = v.includes('/') ? v : `${v}/32`;
    const parsed = tryParseCidr(cidr);
    if (!parsed) throw new Error(`--non-masquerade-cidr: ${JSON.stringify(v)} is not a CIDR`);
    if (parsed.ip.family !== 4)
      throw new Error(`--non-masquerade-cidr: ${v} is IPv6; only IPv4 traffic is masqueraded`);
    return cidr;
  });
}

/** The nft batch that sets the pods' subnets and the kept destinations, atomically. Pure. */
export const egressNatSetsBatch = (podSubnets: readonly string[], keep: readonly string[]): string =>
  replaceSetsBatch(EGRESS_NAT_TABLE, { pods: podSubnets, keep });

/** Deletes the table (uninstall); false when there is none, or no nft. */
export const removeEgressNat = (netnsPath?: string): Promise<boolean> =>
  removeNftTable(EGRESS_NAT_TABLE, netnsPath);

export interface EgressNatOptions {
  /** The VirtualNetwork that is the cluster network. */
  network: string;
  /** Destinations that keep the pod's address (validated by parseNonMasqueradeCidrs). */
  keep: readonly string[];
  log: Logger;
}

export class EgressNat extends NftTableOwner {
  constructor(private readonly o: EgressNatOptions) {
    super({
      table: EGRESS_NAT_TABLE,
      create: egressNatTableBatch(),
      without: 'pods cannot reach beyond the cluster network',
      log: o.log,
    });
  }

  /** Follows the network's IPv4 subnets in `d`. */
  sync(d: Directory): void {
    const net = d.networks.find((n) => n.name === this.o.network);
    if (!net) return;
    this.table.sync(egressNatSetsBatch(ipv4Subnets(net.subnets), this.o.keep));
  }
}
