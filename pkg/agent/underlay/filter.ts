// The underlay filter: only the directory's registered nodes reach castnet's UDP ports (the data
// plane's, the kernel VXLAN port, the health probes'). An nftables table of the agent's own
// (`inet castnet`) holds the nodes' addresses in two sets and drops, and counts, every other datagram
// to those ports before any socket or the VXLAN driver sees it. The table is replaced whole at start
// (idempotent across restarts), its sets are replaced in one atomic batch per change, and it is
// deleted at dispose. Without nftables the agent runs on, unfiltered: the data plane still drops
// datagrams from unknown senders (counted), but the kernel VXLAN port is then open.
import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from '../../log/log.js';
import type { NodeRecord } from '../../lookup/port.js';
import { NftTableOwner, removeNftTable, replaceSetsBatch, replaceTable } from '../../sys/nft-table.js';

export const FILTER_TABLE = 'castnet';
/** The named nftables counter of the datagrams the filter dropped. */
export const FILTER_COUNTER = 'unregistered';

/** The nft batch that (re)creates the table, with its sets empty: nothing reaches the ports yet. */
export function tableBatch(ports: number[]): string {
  const set = `{ ${[...new Set(ports)].sort((a, b) => a - b).join(', ')} }`;
  return [
    // add + delete + define: idempotent whether or not a previous run left the table.
    ...replaceTable(`inet ${FILTER_TABLE}`),
    `table inet ${FILTER_TABLE} {`,
    `  counter ${FILTER_COUNTER} { }`,
    '  set nodes4 { type ipv4_addr; }',
    '  set nodes6 { type ipv6_addr; }',
    '  chain input {',
    '    type filter hook input priority filter - 10; policy accept;',
    `    udp dport ${set} ip saddr != @nodes4 counter name "${FILTER_COUNTER}" drop`,
    `    udp dport ${set} ip6 saddr != @nodes6 counter name "${FILTER_COUNTER}" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The nft batch that replaces both address sets with `addresses`, atomically. */
export function setsBatch(addresses: Iterable<string>): string {
  const nodes4: string[] = [];
  const nodes6: string[] = [];
  for (const a of addresses) {
    if (isIPv4(a)) nodes4.push(a);
    else if (isIPv6(a)) nodes6.push(a);
  }
  return replaceSetsBatch(`inet ${FILTER_TABLE}`, { nodes4: nodes4.sort(), nodes6: nodes6.sort() });
}

/**
 * Deletes the filter's table (uninstall) in the current network namespace or the one at
 * `netnsPath`; false when there is none, or no nft.
 */
export const removeUnderlayFilter = (netnsPath?: string): Promise<boolean> =>
  removeNftTable(`inet ${FILTER_TABLE}`, netnsPath);

export interface UnderlayFilterOptions {
  /** castnet's UDP ports on this node: data plane, VXLAN, health probes. */
  ports: number[];
  log: Logger;
  /** The nft binary (tests). */
  nft?: string;
}

export class UnderlayFilter extends NftTableOwner {
  constructor(o: UnderlayFilterOptions) {
    super({
      table: `inet ${FILTER_TABLE}`,
      create: tableBatch(o.ports),
      without: 'castnet ports are not filtered by underlay sender',
      log: o.log,
      ...(o.nft ? { nft: o.nft } : {}),
    });
  }

  /** Brings the sets in line with the directory's nodes (coalesced; applied in order). */
  sync(nodes: NodeRecord[]): void {
    this.table.sync(setsBatch(new Set(nodes.map((n) => n.address))));
  }
}
