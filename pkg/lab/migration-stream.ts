// Issue 10's migration measurement: a sender on a third node streams sequence-numbered datagrams to
// a group the guest joined from its own kernel, while the guest migrates; the guest's own counter
// (castnet-guest stream, inside the guest, its state migrating with it) says what it lost and got
// twice. Used by test/lab/vm-migration.test.ts and bench/migration.ts.
import type { ChildProcess } from 'node:child_process';
import { sleep, waitFor } from '../base/async.js';
import { spawnIn, stop } from '../sys/exec.js';
import { guestTool, type Guest } from './guest.js';
import type { MigrationFigures } from './migration.js';
import type { Lab } from './runner.js';

/** The guest counter's report (scripts/guest/castnet-guest.c, print_tally). */
export interface GuestStreamTally {
  received: number;
  distinct: number;
  duplicates: number;
  reordered: number;
  /** Sequence numbers between the first and the highest read that never arrived. */
  lost: number;
  first: number;
  last: number;
  maxGapMs: number;
  /** When the longest gap began, and the last read, in ms after the first read. */
  maxGapAfterMs: number;
  spanMs: number;
}

export interface StreamedMigration {
  lost: number;
  duplicates: number;
  /** The stream time the lost messages cover: lost / rate. */
  loss_ms: number;
  /** QEMU's own downtime (query-migrate), the floor of any loss. */
  qemu_downtime_ms: number;
  received: number;
  reordered: number;
  migration_total_ms: number;
  /** The longest the guest read nothing (its own clock): the switch-over as the guest saw it. */
  guest_max_gap_ms: number;
  /** How long the guest went on reading after that gap: a stream that never resumed reads 0. */
  guest_read_after_gap_ms: number;
}

export interface MigrationStreamOptions {
  /** The migrating guest, before the migration. */
  source: Guest;
  /** Performs the migration; resolves with the guest on the target and QEMU's figures. */
  migrate: () => Promise<{ target: Guest; figures: MigrationFigures }>;
  /** The sending pod's namespace (on a third node) and its interface. */
  senderNs: string;
  senderIf?: string;
  group: string;
  port: number;
  /** Messages per second (1,000 in the issue). */
  rate: number;
  /** Stream time before the migration starts and after it completed. */
  leadMs: number;
  tailMs: number;
  /** Waits until the lookup service lists the guest's membership of `group`. */
  joined: () => Promise<unknown>;
}

/**
 * The measurement's lab: the guest (a virt-launcher pod of VMI db-0) on node 0, the sending pod on
 * node 1; the guest migrates to node 2.
 */
export const MIGRATION_LAB = `
nodes: 3
networks:
  - { name: vmnet, id: 300, subnets: [10.30.0.0/16] }
pods:
  - { name: vm, node: 0, network: vmnet, vmi: db-0, vm: { memory: 256 } }
  - { name: feed, node: 1, network: vmnet }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`;
export const MIGRATION_GROUP = '239.10.0.1';
const MIGRATION_PORT = 5010;

/** Streams to MIGRATION_LAB's guest while it migrates to node 2 (as pod vm-target). */
export function measureLabMigration(
  lab: Lab,
  o: Pick<MigrationStreamOptions, 'rate' | 'leadMs' | 'tailMs'>,
): Promise<StreamedMigration> {
  return streamThroughMigration({
    ...o,
    source: lab.guest('vm'),
    migrate: () => lab.migrateVm('vm', 2, 'vm-target'),
    senderNs: lab.podInfo('feed').ns,
    group: MIGRATION_GROUP,
    port: MIGRATION_PORT,
    joined: () =>
      waitFor(() => lab.isMember('vm', MIGRATION_GROUP), { what: `the guest's join of ${MIGRATION_GROUP}` }),
  });
}

const STREAM_LINE = 'castnet-guest stream ';
const READY_LINE = 'castnet-guest ready stream';

export async function streamThroughMigration(o: MigrationStreamOptions): Promise<StreamedMigration> {
  const ready = o.source.waitForLine((l) => l.startsWith(READY_LINE), 20_000);
  const pid = await o.source.background(`castnet-guest stream -p ${o.port} -i eth0 -g ${o.group}`);
  await ready;
  await o.joined();
  let sender: ChildProcess | undefined;
  try {
    sender = spawnIn(o.senderNs, guestTool(), [
      'send',
      ...['-d', o.group, '-p', String(o.port), '-i', o.senderIf ?? 'eth0'],
      ...['-r', String(o.rate), '-n', '100000000', '-q', '-s', '100'],
    ]);
    await sleep(o.leadMs);
    const { target, figures } = await o.migrate();
    await sleep(o.tailMs);
    await stop(sender);
    // What was in flight is read before the count.
    await sleep(200);
    const line = target.waitForLine((l) => l.startsWith(STREAM_LINE), 10_000);
    await target.run(`kill -USR1 ${pid}`);
    const tally = JSON.parse((await line).slice(STREAM_LINE.length)) as GuestStreamTally;
    return {
      lost: tally.lost,
      duplicates: tally.duplicates,
      loss_ms: Math.round((tally.lost * 1000) / o.rate),
      qemu_downtime_ms: figures.downtimeMs,
      received: tally.distinct,
      reordered: tally.reordered,
      migration_total_ms: figures.totalMs,
      guest_max_gap_ms: Math.round(tally.maxGapMs),
      guest_read_after_gap_ms: Math.round(tally.spanMs - tally.maxGapAfterMs - tally.maxGapMs),
    };
  } finally {
    if (sender) await stop(sender);
  }
}
