// Where a workload's program runs: inside one pod's network namespace. The lab names its pods'
// namespaces under /run/netns (`ip netns exec`); a pod of the real cluster is reached through its
// sandbox's pid (`nsenter -t <pid> -n`). Helpers that start real software in pods (avahi, keepalived,
// Cyclone DDS, Hazelcast, the stream's members) take a Where, so the lab and the cluster run the same
// code; only the network namespace is the pod's, the program and its files are the host's.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import { run } from '../../pkg/sys/exec.js';

export interface Where {
  /** Names the pod in errors and logs. */
  readonly label: string;
  /** The namespace as a path (for setns: sockets opened in the pod from the test process). */
  readonly netnsPath: string;
  /** The argv that runs `cmd args` in the pod's network namespace. */
  argv(cmd: string, args: string[]): [string, string[]];
}

/** A lab pod: netns `ns` under /run/netns. */
export function inNetns(ns: string): Where {
  return {
    label: ns,
    netnsPath: `/run/netns/${ns}`,
    argv: (cmd, args) => ['ip', ['netns', 'exec', ns, cmd, ...args]],
  };
}

/** The network namespace of process `pid` (a Kubernetes pod's sandbox), named `label`. */
export function inPidNetns(label: string, pid: number): Where {
  return {
    label,
    netnsPath: `/proc/${pid}/ns/net`,
    argv: (cmd, args) => ['nsenter', ['-t', String(pid), '-n', '--', cmd, ...args]],
  };
}

/** Like run(): `cmd args` in the pod, to completion. */
export function runWhere(
  where: Where,
  cmd: string,
  args: string[],
  opts?: { input?: string; timeoutMs?: number },
): ReturnType<typeof run> {
  const [c, a] = where.argv(cmd, args);
  return run(c, a, opts);
}

/** Starts a long-running `cmd args` in the pod; the caller stops it. */
export function spawnWhere(where: Where, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const [c, a] = where.argv(cmd, args);
  return spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}
