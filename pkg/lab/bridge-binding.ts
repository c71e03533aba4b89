// A VM pod's network namespace rewired as KubeVirt's bridge binding rewires a virt-launcher pod
// (kubevirt pkg/network/infraconfigurators/bridge.go): the pod interface castnet-cni made keeps its
// link to castnet but becomes a bridge port, and the guest behind a tap takes over its MAC and IPs.
// docs/lab.md#vm-pods says what differs from KubeVirt and why.
import { randomBytes } from 'node:crypto';
import { run } from '../sys/exec.js';

/** KubeVirt's names for the pod interface eth0's bridge, renamed interface and tap. */
export const BRIDGE = 'k6t-eth0';
export const POD_NIC = 'eth0-nic';
export const TAP = 'tap0';

export interface BridgeBinding {
  /** The tap qemu's virtio-net uses. */
  tap: string;
  /** The pod interface's MTU, which the tap and the guest's virtio-net take. */
  mtu: number;
}

/**
 * Rewires pod namespace `ns`, whose `ifname` castnet-cni configured: the interface goes down, loses
 * its addresses, is renamed `<ifname>-nic`, gets a random MAC and becomes, without MAC learning, a
 * port of a new bridge beside a tap. The guest then uses the interface's original MAC and IPs.
 */
export async function bindBridge(ns: string, ifname = 'eth0'): Promise<BridgeBinding> {
  const ip = (...args: string[]) => run('ip', ['-n', ns, ...args]);
  // IPv6 off on the pod side: the bridge and its ports are not hosts of the network (KubeVirt gives
  // the bridge only a link-local IPv4 for its DHCP server, which the lab does not run).
  const noIpv6 = (dev: string) =>
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`]);
  const [link] = JSON.parse((await ip('-j', 'link', 'show', ifname)).stdout) as { mtu: number }[];
  if (!link) throw new Error(`pod namespace ${ns} has no ${ifname}`);
  const { mtu } = link;
  await ip('link', 'set', ifname, 'down');
  await ip('addr', 'flush', 'dev', ifname);
  await ip('link', 'set', ifname, 'name', POD_NIC);
  await ip('link', 'set', POD_NIC, 'address', randomMac());
  await noIpv6(POD_NIC);
  await ip('link', 'add', BRIDGE, 'mtu', String(mtu), 'type', 'bridge');
  await noIpv6(BRIDGE);
  await ip('link', 'set', POD_NIC, 'master', BRIDGE);
  await ip('tuntap', 'add', 'dev', TAP, 'mode', 'tap');
  await noIpv6(TAP);
  await ip('link', 'set', TAP, 'mtu', String(mtu), 'master', BRIDGE, 'up');
  await ip('link', 'set', BRIDGE, 'up');
  await ip('link', 'set', POD_NIC, 'up');
  await ip('link', 'set', POD_NIC, 'type', 'bridge_slave', 'learning', 'off');
  return { tap: TAP, mtu };
}

/** A random locally administered unicast MAC, as KubeVirt gives the renamed pod interface. */
function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
