// A Hazelcast member JVM (the real Hazelcast jar, `make deps`: mk/hazelcast.mk, and
// hazelcast/ClusterMember.java, which joins by multicast discovery only) in a pod of the lab or of the
// real cluster (a Where, ../harness/where.ts), and the cluster views it printed.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitFor } from '../../pkg/base/async.js';
import { stop } from '../../pkg/sys/exec.js';
import { repoRoot } from '../harness/repo.js';
import { spawnWhere, type Where } from '../harness/where.js';

const HAZELCAST = join(repoRoot, '.cache/hazelcast');
export const PORT = 5701;
/** Hazelcast's multicast discovery group and port (its defaults, stated in ClusterMember.java). */
export const DISCOVERY_GROUP = '224.2.2.3';
export const DISCOVERY_PORT = 54327;
/** JVM start-up and Hazelcast's join on a loaded 2-core machine take tens of seconds. */
export const DEADLINE_MS = 120_000;

/** Fails naming the make target when the jar or the member program is missing. */
export function requireHazelcast(): void {
  if (!existsSync(`${HAZELCAST}/classes/ClusterMember.class`))
    throw new Error(`${HAZELCAST} has no ClusterMember: run \`make deps\` (mk/hazelcast.mk) first`);
}

export interface View {
  at: number;
  size: number;
  members: string[];
}

/** One Hazelcast member JVM in a pod, and the cluster views it printed. */
export class HazelcastMember {
  readonly views: View[] = [];
  /** When the JVM started Hazelcast (its own clock, epoch ms). */
  startedAt?: number;
  private child?: ChildProcess;
  private stderr = '';

  constructor(
    readonly pod: string,
    private readonly where: Where,
    readonly address: string,
  ) {}

  start(): void {
    const classpath = `${HAZELCAST}/classes:${HAZELCAST}/lib/*`;
    const args = ['-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', classpath];
    this.child = spawnWhere(this.where, 'java', [...args, 'ClusterMember', this.address]);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const [kind, at, size, list] = line.split(' ');
      if (kind === 'starting') this.startedAt = Number(at);
      if (kind === 'view')
        this.views.push({ at: Number(at), size: Number(size), members: list ? list.split(',') : [] });
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
  }

  get view(): View | undefined {
    return this.views[this.views.length - 1];
  }

  /** Waits until the member's current view holds exactly `members`. */
  async waitForView(members: HazelcastMember[], what: string): Promise<View> {
    const want = members.map((m) => `${m.address}:${PORT}`).sort();
    return waitFor(
      () => {
        if (this.child?.exitCode !== null) throw new Error(`${this.pod} exited: ${this.stderr}`);
        const v = this.view;
        return v && v.members.join(',') === want.join(',') && v;
      },
      {
        what: `${this.pod} ${what}`,
        timeoutMs: DEADLINE_MS,
        observed: () => `view ${JSON.stringify(this.view)}`,
        failFast: true,
      },
    );
  }

  kill(): Promise<void> {
    return this.child ? stop(this.child, 0) : Promise.resolve();
  }

  dispose(): Promise<void> {
    return this.kill();
  }
}
