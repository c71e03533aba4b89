// The underlay filter: only the directory's registered nodes reach castnet's UDP ports (the data
// plane's, the kernel VXLAN port, the health probes'). An nftables table of the agent's own
// (`inet castnet`) holds the nodes' addresses in two sets and drops, and counts, every other datagram
// to those ports before any socket or the VXLAN driver sees it. The table is replaced whole at start
// (idempotent across restarts), its sets are replaced in one atomic batch per change, and it is
// deleted at dispose. Without nftables the agent runs on, unfiltered: the data plane still drops
// datagrams from unknown senders (counted), but the kernel VXLAN port is then open.
import { isIPv4, isIPv6 } from 'node:net';
import { errorMessage } from '../../base/errors.js';
import type { Disposable } from '../../base/lifecycle.js';
import type { Logger } from '../../log/log.js';
import type { NodeRecord } from '../../lookup/port.js';
import { run } from '../../sys/exec.js';

export const FILTER_TABLE = 'castnet';
/** The named nftables counter of the datagrams the filter dropped. */
export const FILTER_COUNTER = 'unregistered';

/** The nft batch that (re)creates the table, with its sets empty: nothing reaches the ports yet. */
export function tableBatch(ports: number[]): string {
  const set = `{ ${[...new Set(ports)].sort((a, b) => a - b).join(', ')} }`;
  return [
    // add + delete + define: idempotent whether or not a previous run left the table.
    `add table inet ${FILTER_TABLE}`,
    `delete table inet ${FILTER_TABLE}`,
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
  const v4: string[] = [];
  const v6: string[] = [];
  for (const a of addresses) {
    if (isIPv4(a)) v4.push(a);
    else if (isIPv6(a)) v6.push(a);
  }
  const lines = [`flush set inet ${FILTER_TABLE} nodes4`, `flush set inet ${FILTER_TABLE} nodes6`];
  if (v4.length) lines.push(`add element inet ${FILTER_TABLE} nodes4 { ${v4.sort().join(', ')} }`);
  if (v6.length) lines.push(`add element inet ${FILTER_TABLE} nodes6 { ${v6.sort().join(', ')} }`);
  return lines.join('\n') + '\n';
}

/**
 * Deletes the filter's table (uninstall) in the current network namespace or the one at
 * `netnsPath`; false when there is none, or no nft.
 */
export async function removeUnderlayFilter(netnsPath?: string): Promise<boolean> {
  const del = ['nft', 'delete', 'table', 'inet', FILTER_TABLE];
  const [cmd, ...args] = netnsPath ? ['nsenter', `--net=${netnsPath}`, ...del] : del;
  return run(cmd!, args).then(
    () => true,
    () => false,
  );
}

export type FilterState = 'starting' | 'active' | 'unavailable' | 'failed' | 'stopped';

export interface UnderlayFilterOptions {
  /** castnet's UDP ports on this node: data plane, VXLAN, health probes. */
  ports: number[];
  log: Logger;
  /** The nft binary (tests). */
  nft?: string;
}

export class UnderlayFilter implements Disposable {
  private state: FilterState = 'starting';
  private applied = '';
  private pending: string[] | undefined;
  private running: Promise<void> | undefined;
  private readonly counts = { syncs: 0, errors: 0, unavailable: 0 };

  constructor(private readonly o: UnderlayFilterOptions) {}

  /** Installs the table (sets empty); logs and counts a missing nft instead of failing. */
  async start(): Promise<void> {
    const nft = this.o.nft ?? 'nft';
    try {
      await run(nft, ['--version']);
    } catch (err) {
      this.state = 'unavailable';
      this.counts.unavailable++;
      this.o.log.warn('nftables unavailable: castnet ports are not filtered by underlay sender', {
        error: errorMessage(err),
      });
      return;
    }
    try {
      await run(nft, ['-f', '-'], { input: tableBatch(this.o.ports) });
      this.state = 'active';
    } catch (err) {
      this.state = 'failed';
      this.counts.errors++;
      this.o.log.error('underlay filter not installed; castnet ports are not filtered', {
        error: errorMessage(err),
      });
    }
  }

  /** Brings the sets in line with the directory's nodes (coalesced; applied in order). */
  sync(nodes: NodeRecord[]): void {
    if (this.state !== 'active') return;
    this.pending = [...new Set(nodes.map((n) => n.address))];
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves once every sync so far is applied. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  stats(): Record<string, unknown> {
    return { state: this.state, ...this.counts };
  }

  async dispose(): Promise<void> {
    this.pending = undefined;
    await this.settled();
    if (this.state !== 'active') return;
    this.state = 'stopped';
    await run(this.o.nft ?? 'nft', ['delete', 'table', 'inet', FILTER_TABLE]).catch((err: Error) =>
      this.o.log.warn('underlay filter not removed', { error: err.message }),
    );
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const batch = setsBatch(this.pending);
      this.pending = undefined;
      if (this.state !== 'active') return;
      if (batch === this.applied) continue;
      try {
        await run(this.o.nft ?? 'nft', ['-f', '-'], { input: batch });
        this.applied = batch;
        this.counts.syncs++;
      } catch (err) {
        this.counts.errors++;
        this.o.log.warn('underlay filter sets not updated; retried on the next change', {
          error: errorMessage(err),
        });
      }
    }
  }
}
