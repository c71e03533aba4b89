// A real live migration of a lab guest, the way KubeVirt moves a VM: the target virt-launcher pod's
// QEMU waits with `-incoming` on a unix socket, and the source QEMU migrates to a unix socket of its
// own. Neither pod reaches the other: as KubeVirt's virt-handler does, a proxy on each node carries
// the stream between the two sockets over the nodes' network (here the lab's underlay, TCP from node
// to node). QMP drives it (`migrate`, then `query-migrate` until it completes), and QEMU's own
// figures (downtime, total time) come back for the report.
import type { ChildProcess } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { waitFor } from '../base/async.js';
import { DisposableStore, toDisposable, type Disposable } from '../base/lifecycle.js';
import { runIn, spawnIn, stop } from '../sys/exec.js';
import type { Guest } from './guest.js';

/** What migration needs of a guest: its name and its QMP. */
export type QmpGuest = Pick<Guest, 'spec' | 'qmp'>;

/** The two ends: the node namespaces the proxies run in, and the target node's underlay address. */
export interface MigrationPath {
  sourceNodeNs: string;
  targetNodeNs: string;
  targetNodeAddress: string;
  /** TCP port of the target node's proxy. */
  port: number;
  /** The source QEMU migrates to this unix socket (the source node's proxy listens on it). */
  sourceSocket: string;
  /** The target QEMU's `-incoming unix:` socket (the target node's proxy connects to it). */
  targetSocket: string;
}

/** QEMU's account of a completed migration (query-migrate), in ms. */
export interface MigrationFigures {
  /** How long the guest ran nowhere: the last RAM and device state, then the target's start. */
  downtimeMs: number;
  totalMs: number;
  setupMs: number;
  /** RAM bytes transferred. */
  transferredBytes: number;
}

/** How long a migration of a small TCG guest may take before it counts as failed. */
const MIGRATION_TIMEOUT_MS = 120_000;

/** The per-node proxies of one migration (socat, one connection each), stopped by dispose(). */
export class MigrationProxy implements Disposable {
  private readonly owned = new DisposableStore();
  private readonly children: { child: ChildProcess; what: string; stderr: string }[] = [];

  constructor(private readonly path: MigrationPath) {}

  async start(): Promise<void> {
    const p = this.path;
    // The target first: the source's connection must find it listening.
    this.spawn(p.targetNodeNs, [
      `TCP-LISTEN:${p.port},bind=${p.targetNodeAddress},reuseaddr`,
      `UNIX-CONNECT:${p.targetSocket}`,
    ]);
    await waitFor(() => this.listening(p.targetNodeNs, p.port), {
      what: `the migration proxy on ${p.targetNodeAddress}:${p.port}`,
      timeoutMs: 10_000,
      failFast: true,
    });
    rmSync(p.sourceSocket, { force: true });
    this.owned.add(toDisposable(() => rmSync(p.sourceSocket, { force: true })));
    this.spawn(p.sourceNodeNs, [`UNIX-LISTEN:${p.sourceSocket}`, `TCP:${p.targetNodeAddress}:${p.port}`]);
    await waitFor(() => this.alive() && existsSocket(p.sourceSocket), {
      what: `the migration proxy's socket ${p.sourceSocket}`,
      timeoutMs: 10_000,
      failFast: true,
    });
  }

  private spawn(ns: string, args: string[]): void {
    const child = spawnIn(ns, 'socat', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const entry = { child, what: `socat ${args.join(' ')} in ${ns}`, stderr: '' };
    child.stderr?.on('data', (b: Buffer) => (entry.stderr = (entry.stderr + b.toString()).slice(-2000)));
    this.children.push(entry);
    this.owned.add(toDisposable(() => stop(child)));
  }

  /** Throws when a proxy exited with an error, with its stderr, so the waits fail at once. */
  private alive(): boolean {
    for (const c of this.children)
      if (c.child.exitCode !== null && c.child.exitCode !== 0)
        throw new Error(`${c.what} exited with ${c.child.exitCode}: ${c.stderr.trim()}`);
    return true;
  }

  private async listening(ns: string, port: number): Promise<boolean> {
    this.alive();
    const { stdout } = await runIn(ns, 'ss', ['-Hltn', `sport = :${port}`]);
    return stdout.trim().length > 0;
  }

  dispose(): Promise<void> {
    return this.owned.dispose();
  }
}

function existsSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

interface QueryMigrate {
  status?: string;
  'error-desc'?: string;
  downtime?: number;
  'total-time'?: number;
  'setup-time'?: number;
  ram?: { transferred?: number };
}

/**
 * Migrates `source` into `target` (already started with `-incoming unix:<path.targetSocket>`) along
 * `path`, and resolves with QEMU's figures once the target runs the guest. The source is left
 * paused, as after any migration: its owner quits it (virt-launcher's source pod goes away).
 */
export async function migrateGuest(
  source: QmpGuest,
  target: QmpGuest,
  path: MigrationPath,
): Promise<MigrationFigures> {
  const proxy = new MigrationProxy(path);
  try {
    await proxy.start();
    // The defaults cap neither a lab guest's RAM copy nor its downtime in a way that matters here;
    // events let query-migrate report every state.
    await source.qmp('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
    await source.qmp('migrate', { uri: `unix:${path.sourceSocket}` });
    const done = await waitFor(
      async () => {
        const q = (await source.qmp('query-migrate')) as QueryMigrate;
        if (q.status === 'failed' || q.status === 'cancelled')
          throw new Error(
            `migration of ${source.spec.name} ${q.status}: ${q['error-desc'] ?? 'no reason given'}`,
          );
        // QEMU sets 'completed' a moment before it computes the times (migration_iteration_finish):
        // a query in between reads zeros.
        return q.status === 'completed' && (q['total-time'] ?? 0) > 0 ? q : undefined;
      },
      {
        what: `the migration of ${source.spec.name} to ${target.spec.name}`,
        timeoutMs: MIGRATION_TIMEOUT_MS,
        failFast: true,
      },
    );
    await waitFor(
      async () => ((await target.qmp('query-status')) as { status?: string }).status === 'running',
      { what: `${target.spec.name} to run after the migration`, timeoutMs: 10_000 },
    );
    return {
      downtimeMs: done.downtime ?? NaN,
      totalMs: done['total-time'] ?? NaN,
      setupMs: done['setup-time'] ?? NaN,
      transferredBytes: done.ram?.transferred ?? NaN,
    };
  } finally {
    await proxy.dispose();
  }
}
