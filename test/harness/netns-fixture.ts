// Test fixture: throwaway network namespaces joined by veth pairs, removed on cleanup. Names carry
// a per-file prefix and the pid so parallel jest workers never collide.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class NetnsFixture {
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];

  constructor(private readonly prefix: string) {}

  /** Creates namespace `<prefix><pid><suffix>` with loopback up; returns its name. */
  netns(suffix: string): string {
    const name = `${this.prefix}${process.pid}${suffix}`;
    ip('netns', 'add', name);
    this.namespaces.push(name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  path(ns: string): string {
    return `/var/run/netns/${ns}`;
  }

  /** A veth pair between two namespaces, both ends up, with optional addresses (CIDR). */
  veth(nsA: string, ifA: string, nsB: string, ifB: string, addrA?: string, addrB?: string): void {
    ip('link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB);
    for (const [ns, ifname, addr] of [
      [nsA, ifA, addrA],
      [nsB, ifB, addrB],
    ] as const) {
      if (addr) ip('-n', ns, 'addr', 'add', addr, 'dev', ifname, ...(addr.includes(':') ? ['nodad'] : []));
      ip('-n', ns, 'link', 'set', ifname, 'up');
    }
  }

  /** Runs a command inside a namespace and returns its stdout. */
  exec(ns: string, cmd: string, args: string[], input?: string): string {
    return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', input });
  }

  /** Starts a long-running command inside a namespace; it is killed on cleanup. */
  spawn(ns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe' });
    this.children.push(child);
    return child;
  }

  cleanup(): void {
    for (const child of this.children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    this.namespaces.length = 0;
  }
}
