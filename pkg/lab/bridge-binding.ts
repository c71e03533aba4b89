// A VM pod's network namespace rewired as KubeVirt's bridge binding rewires a virt-launcher pod
// (kubevirt pkg/network/infraconfigurators/bridge.go): the pod interface castnet-cni made keeps its
// link to castnet but becomes a bridge port, and the guest behind a tap takes over its MAC and IPs.
// docs/lab.md#vm-pods says what differs from KubeVirt and why. The commands are plain `ip` and
// `sysctl` invocations (bridgeBindingCommands), so the same wiring runs in a lab namespace
// (bindBridge) and, as a shell script (bridgeBindingScript), inside a pod on the real cluster.
import { randomBytes } from 'node:crypto';
import { run } from '../sys/exec.js';

/** KubeVirt's names for the pod interface eth0's bridge, renamed interface and tap. */
export const BRIDGE = 'k6t-eth0';
export const POD_NIC = 'eth0-nic';
export const TAP = 'tap0';

export interface BindingNames {
  /** k6t-<ifname> */
  bridge: string;
  /** <ifname>-nic: the pod interface, renamed */
  nic: string;
  /** tap<ifname without its first 3 characters>: tap0 for eth0, tap1 for Multus' net1 */
  tap: string;
}

/** KubeVirt's names (virtnetlink's GenerateBridgeName, GenerateTapDeviceName, ...-nic) for `ifname`. */
export function bindingNames(ifname: string): BindingNames {
  return { bridge: `k6t-${ifname}`, nic: `${ifname}-nic`, tap: `tap${ifname.slice(3)}` };
}

export interface BridgeBinding {
  /** The tap qemu's virtio-net uses. */
  tap: string;
  /** The pod interface's MTU, which the tap and the guest's virtio-net take. */
  mtu: number;
}

/**
 * The commands, in order, that rewire the namespace they run in, where `ifname` (MTU `mtu`) is the
 * pod interface castnet-cni configured: the interface goes down, loses its addresses, is renamed
 * `<ifname>-nic`, gets MAC `nicMac` and becomes, without MAC learning, a port of a new bridge beside
 * a tap. Each is an argv: `ip ...` (iproute2) or `sysctl ...`.
 */
export function bridgeBindingCommands(ifname: string, o: { mtu: number; nicMac: string }): string[][] {
  const { bridge, nic, tap } = bindingNames(ifname);
  const mtu = String(o.mtu);
  // IPv6 off on the pod side: the bridge and its ports are not hosts of the network (KubeVirt gives
  // the bridge only a link-local IPv4 for its DHCP server, which the lab does not run).
  const noIpv6 = (dev: string) => ['sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`];
  return [
    ['ip', 'link', 'set', ifname, 'down'],
    ['ip', 'addr', 'flush', 'dev', ifname],
    ['ip', 'link', 'set', ifname, 'name', nic],
    ['ip', 'link', 'set', nic, 'address', o.nicMac],
    noIpv6(nic),
    ['ip', 'link', 'add', bridge, 'mtu', mtu, 'type', 'bridge'],
    noIpv6(bridge),
    ['ip', 'link', 'set', nic, 'master', bridge],
    ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'],
    noIpv6(tap),
    ['ip', 'link', 'set', tap, 'mtu', mtu, 'master', bridge, 'up'],
    ['ip', 'link', 'set', bridge, 'up'],
    ['ip', 'link', 'set', nic, 'up'],
    ['ip', 'link', 'set', nic, 'type', 'bridge_slave', 'learning', 'off'],
  ];
}

/** bridgeBindingCommands as a POSIX shell script (`set -e`, a command a line). */
export function bridgeBindingScript(ifname: string, o: { mtu: number; nicMac: string }): string {
  const lines = bridgeBindingCommands(ifname, o).map((argv) => argv.map(shellQuote).join(' '));
  return ['set -e', ...lines].join('\n') + '\n';
}

/** `s` as one POSIX shell word. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Rewires lab pod namespace `ns`, whose `ifname` castnet-cni configured (bridgeBindingCommands,
 * with a random MAC for the renamed interface). The guest then uses the interface's original MAC
 * and IPs.
 */
export async function bindBridge(ns: string, ifname = 'eth0'): Promise<BridgeBinding> {
  const [link] = JSON.parse((await run('ip', ['-n', ns, '-j', 'link', 'show', ifname])).stdout) as {
    mtu: number;
  }[];
  if (!link) throw new Error(`pod namespace ${ns} has no ${ifname}`);
  const { mtu } = link;
  for (const [cmd, ...args] of bridgeBindingCommands(ifname, { mtu, nicMac: randomMac() })) {
    if (cmd === 'ip') await run('ip', ['-n', ns, ...args]);
    else await run('ip', ['netns', 'exec', ns, cmd!, ...args]);
  }
  return { tap: bindingNames(ifname).tap, mtu };
}

/** A random locally administered unicast MAC, as KubeVirt gives the renamed pod interface. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
