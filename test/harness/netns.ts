// Network namespace helpers for integration tests: create, inspect and remove namespaces that a
// test file owns. Names must be unique per test file (jest runs files in parallel): use netnsTag().
import { existsSync } from 'node:fs';
import { run, runIn } from '../../pkg/sys/exec.js';

export const NETNS_DIR = '/run/netns';

/** A prefix unique to this test process: `cn<tag><pid>`, short enough for interface names too. */
export function netnsTag(tag: string): string {
  return `cn${tag}${process.pid}`;
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Creates namespace `name` with loopback up (removing a leftover of the same name); returns its path. */
export async function addNetns(name: string): Promise<string> {
  await delNetns(name);
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return netnsPath(name);
}

/** Removes namespace `name` if it exists; never throws (for afterAll). */
export async function delNetns(name: string): Promise<void> {
  if (!existsSync(netnsPath(name))) return;
  await run('ip', ['netns', 'del', name]).catch(() => undefined);
}

/** Namespaces named `${tag}${name}`, created on demand and all removed by `removeAll` (for afterAll). */
export function podNamespaces(tag: string): {
  pod(name: string): Promise<string>;
  removeAll(): Promise<void>;
} {
  const made: string[] = [];
  return {
    async pod(name) {
      const ns = `${tag}${name}`;
      made.push(ns);
      await addNetns(ns);
      return ns;
    },
    async removeAll() {
      for (const ns of made.splice(0)) await delNetns(ns);
    },
  };
}

/** Removes every namespace whose name starts with `prefix` (leftovers of a crashed run of this file). */
export async function delNetnsWithPrefix(prefix: string): Promise<void> {
  const { stdout } = await run('ip', ['-j', 'netns', 'list']);
  const names = (JSON.parse(stdout || '[]') as Array<{ name: string }>).map((n) => n.name);
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map(delNetns));
}

export interface LinkInfo {
  ifname: string;
  ifindex: number;
  address?: string;
  mtu: number;
  operstate?: string;
  link_type?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

/** The links of namespace `ns` (or of a namespace path) with their addresses, as `ip -j -d addr` shows them. */
export async function links(ns: string): Promise<LinkInfo[]> {
  const { stdout } = await run('ip', ['-n', ns, '-j', '-d', 'addr', 'show']);
  return JSON.parse(stdout) as LinkInfo[];
}

/** Links of kind veth in `ns`. */
export async function veths(ns: string): Promise<LinkInfo[]> {
  return (await links(ns)).filter((l) => l.linkinfo?.info_kind === 'veth');
}

/** IPv4 addresses (without prefix) on `ifname` in `ns`. */
export async function ipv4Of(ns: string, ifname: string): Promise<string[]> {
  const link = (await links(ns)).find((l) => l.ifname === ifname);
  return (link?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local);
}

/** Whether `ns` reaches `address` with ping (one reply within `timeoutS` seconds, retried a few times). */
export async function pings(ns: string, address: string, attempts = 3, timeoutS = 2): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    const ok = await runIn(ns, 'ping', ['-c', '1', '-W', String(timeoutS), address]).then(
      () => true,
      () => false,
    );
    if (ok) return true;
  }
  return false;
}
