// An nftables table of the agent's own whose sets follow the agent's state: created whole at start
// (idempotent across restarts: the batch deletes what a previous run left), its sets replaced in one
// atomic `nft -f` batch per burst of changes, deleted at dispose. Without nft, or when the kernel
// refuses the table, the agent runs on without it: state() says so, and the owner logged why.
import { errorMessage } from '../base/errors.js';
import type { Disposable } from '../base/lifecycle.js';
import type { Logger } from '../log/log.js';
import { run } from './exec.js';

export type NftTableState = 'starting' | 'active' | 'unavailable' | 'failed' | 'stopped';

export interface NftTableOptions {
  /** `<family> <name>`, e.g. `inet castnet`: what dispose deletes. */
  table: string;
  /** The batch that (re)creates the table with its sets empty. */
  create: string;
  /** What the agent goes without when the table is missing, for the log ("castnet ports are not filtered"). */
  without: string;
  log: Logger;
  /** The nft binary (tests). */
  nft?: string;
}

/** `add table` + `delete table`: the start of a batch that replaces `table` whether or not it exists. */
export const replaceTable = (table: string): string[] => [`add table ${table}`, `delete table ${table}`];

/** The nft batch that replaces each of `table`'s sets with its elements, in one atomic `nft -f`. */
export function replaceSetsBatch(table: string, sets: Readonly<Record<string, readonly string[]>>): string {
  const lines: string[] = [];
  for (const [set, elements] of Object.entries(sets)) {
    lines.push(`flush set ${table} ${set}`);
    if (elements.length) lines.push(`add element ${table} ${set} { ${elements.join(', ')} }`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Deletes `table` (`<family> <name>`) in the current network namespace or the one at `netnsPath`;
 * false when there is none, or no nft.
 */
export async function removeNftTable(table: string, netnsPath?: string): Promise<boolean> {
  const del = ['nft', 'delete', 'table', ...table.split(' ')];
  const [cmd, ...args] = netnsPath ? ['nsenter', `--net=${netnsPath}`, ...del] : del;
  return run(cmd!, args).then(
    () => true,
    () => false,
  );
}

export class NftTable implements Disposable {
  private current: NftTableState = 'starting';
  private applied = '';
  private pending: string | undefined;
  private running: Promise<void> | undefined;
  private readonly counts = { syncs: 0, errors: 0, unavailable: 0 };

  constructor(private readonly o: NftTableOptions) {}

  private get nft(): string {
    return this.o.nft ?? 'nft';
  }

  get state(): NftTableState {
    return this.current;
  }

  /** Installs the table; logs and counts a missing nft or a refused table instead of failing. */
  async start(): Promise<void> {
    try {
      await run(this.nft, ['--version']);
    } catch (err) {
      this.current = 'unavailable';
      this.counts.unavailable++;
      this.o.log.warn(`nftables unavailable: ${this.o.without}`, { error: errorMessage(err) });
      return;
    }
    try {
      await run(this.nft, ['-f', '-'], { input: this.o.create });
      this.current = 'active';
    } catch (err) {
      this.current = 'failed';
      this.counts.errors++;
      this.o.log.error(`nftables table ${this.o.table} not installed: ${this.o.without}`, {
        error: errorMessage(err),
      });
    }
  }

  /** Applies `batch` (the sets' new contents), coalesced with later ones; in order; a no-op when unchanged. */
  sync(batch: string): void {
    if (this.current !== 'active') return;
    this.pending = batch;
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves once every sync so far is applied. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  stats(): Record<string, unknown> {
    return { state: this.current, ...this.counts };
  }

  async dispose(): Promise<void> {
    this.pending = undefined;
    await this.settled();
    if (this.current !== 'active') return;
    this.current = 'stopped';
    await run(this.nft, ['delete', 'table', ...this.o.table.split(' ')]).catch((err: Error) =>
      this.o.log.warn(`nftables table ${this.o.table} not removed`, { error: err.message }),
    );
  }

  private async drain(): Promise<void> {
    while (this.pending !== undefined) {
      const batch = this.pending;
      this.pending = undefined;
      if (this.current !== 'active') return;
      if (batch === this.applied) continue;
      try {
        await run(this.nft, ['-f', '-'], { input: batch });
        this.applied = batch;
        this.counts.syncs++;
      } catch (err) {
        this.counts.errors++;
        this.o.log.warn(`nftables table ${this.o.table} not updated; retried on the next change`, {
          error: errorMessage(err),
        });
      }
    }
  }
}

/** An agent part that owns one nftables table: its lifecycle and its stats are the table's. */
export abstract class NftTableOwner implements Disposable {
  protected readonly table: NftTable;

  constructor(o: NftTableOptions) {
    this.table = new NftTable(o);
  }

  /** Installs the table (sets empty); logs and counts a missing nft instead of failing. */
  start(): Promise<void> {
    return this.table.start();
  }

  /** Resolves once every sync so far is applied. */
  settled(): Promise<void> {
    return this.table.settled();
  }

  stats(): Record<string, unknown> {
    return this.table.stats();
  }

  dispose(): Promise<void> {
    return this.table.dispose();
  }
}
