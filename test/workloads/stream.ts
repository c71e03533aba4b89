// A market-data-style stream (issue 13, scenario 5) between pods (of the lab or of the real cluster:
// a Where, ../harness/where.ts): the sender paces sequence-numbered datagrams (pkg/lab/stream.ts) to
// one group, and each member reads them through a UDP socket of its own on the group's port, opened
// in its pod, into a StreamTally. Each member also holds the group with a real joining application
// (socat), as the lab's join step does.
import type { ChildProcess } from 'node:child_process';
import { sleep } from '../../pkg/base/async.js';
import type { Disposable } from '../../pkg/base/lifecycle.js';
import { readStream, stampStream, StreamTally, type StreamSummary } from '../../pkg/lab/stream.js';
import { stop } from '../../pkg/sys/exec.js';
import { UnderlaySocket, type OutDatagram } from '../../pkg/underlay/udp.js';
import { spawnWhere, type Where } from '../harness/where.js';

export interface StreamSpec {
  group: string;
  port: number;
  /** Datagrams per second. */
  rate: number;
  count: number;
  /** The run's number: datagrams of other runs (a warm-up) are not tallied. */
  run: number;
}

/** The datagrams each member read, by member name. */
export class StreamMembers implements Disposable {
  readonly tallies = new Map<string, StreamTally>();
  /** Members that read a datagram of any other run (a warm-up). */
  readonly warm = new Set<string>();
  private readonly sockets: UnderlaySocket[] = [];
  private readonly joins: ChildProcess[] = [];

  constructor(readonly spec: StreamSpec) {}

  /** Opens member `name`'s socket in its pod (SO_REUSEADDR, beside its joining application's). */
  read(name: string, where: Where): void {
    const tally = new StreamTally(this.spec.count);
    this.tallies.set(name, tally);
    const sock = UnderlaySocket.open({
      address: this.spec.group,
      port: this.spec.port,
      netns: where.netnsPath,
      reuseAddress: true,
    });
    this.sockets.push(sock);
    sock.onDatagrams((batch) => {
      const now = Number(process.hrtime.bigint());
      for (const d of batch) {
        const h = readStream(d.data);
        if (h?.run === this.spec.run) tally.record(h.seq, now);
        else if (h) this.warm.add(name);
      }
    });
  }

  /**
   * A socat in the pod that joins the group on `address` (the member's address on the network) and
   * holds it while it runs; its own copies are discarded.
   */
  join(where: Where, address: string): ChildProcess {
    const { group, port } = this.spec;
    const socat = spawnWhere(where, 'socat', [
      '-u',
      `UDP4-RECV:${port},reuseaddr,ip-add-membership=${group}:${address}`,
      'OPEN:/dev/null',
    ]);
    this.joins.push(socat);
    return socat;
  }

  /** Whether every member read `count` datagrams of the run (duplicates included). */
  get complete(): boolean {
    return [...this.tallies.values()].every((t) => t.count >= this.spec.count);
  }

  counts(): Record<string, number> {
    return Object.fromEntries([...this.tallies].map(([m, t]) => [m, t.count]));
  }

  summaries(): Record<string, StreamSummary> {
    return Object.fromEntries([...this.tallies].map(([m, t]) => [m, t.summary(this.spec.count)]));
  }

  async dispose(): Promise<void> {
    for (const s of this.sockets) s.dispose();
    for (const j of this.joins) await stop(j);
  }
}

/** What users of a stream expect of each member: every datagram, once, in order, nothing else. */
export function exactlyOnceInOrder(summaries: Record<string, StreamSummary>, count: number): void {
  for (const [member, s] of Object.entries(summaries)) {
    expect({ member, received: s.received, duplicates: s.duplicates, reordered: s.reordered }).toEqual({
      member,
      received: count,
      duplicates: 0,
      reordered: 0,
    });
    expect(s.unexpected).toBe(0);
  }
}

/** One stamped 100-byte datagram of run `run`. */
function datagram(run: number, seq: number): Buffer {
  const data = Buffer.alloc(100);
  stampStream(data, run, seq, process.hrtime.bigint());
  return data;
}

/** Sends `spec.count` datagrams at `spec.rate`, paced per millisecond, from `sock`. */
export async function sendStream(sock: UnderlaySocket, spec: StreamSpec): Promise<void> {
  const to = sock.peer(spec.group, spec.port);
  const start = process.hrtime.bigint();
  for (let seq = 0; seq < spec.count;) {
    const due = Math.min(spec.count, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * spec.rate));
    const batch: OutDatagram[] = [];
    for (; seq < due; seq++) batch.push({ to, data: datagram(spec.run, seq) });
    if (batch.length) expect(sock.send(batch)).toBe(batch.length);
    await sleep(1);
  }
}

/** One datagram of run `spec.run + 1000` (not tallied), e.g. until every member is reached. */
export function sendWarmUp(sock: UnderlaySocket, spec: StreamSpec): void {
  sock.send([{ to: sock.peer(spec.group, spec.port), data: datagram(spec.run + 1000, 0) }]);
}
