// Rebuilds an endpoint's record from the kernel when its state file was lost (quarantined as corrupt):
// the host veth names it, its bridge names the network, the bridge's static FDB entry for the port
// holds the pod's MAC, and the veth's peer (found among the named network namespaces) holds the
// interface name and the addresses. The addresses matter most: without them castnet IPAM would hand
// a running pod's address to the next pod.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NetworkSpec } from '../lookup/port.js';
import { NUD_NOARP } from '../netlink/constants.js';
import { Rtnl } from '../netlink/rtnl.js';
import { bridgeName } from './names.js';
import type { Endpoint } from './table.js';
import { findPodEnd } from './wiring.js';

/** What could be rebuilt, or why not: `retry` when a later attempt may succeed (network not known yet). */
export type Rebuilt =
  { ok: true; endpoint: Omit<Endpoint, 'endpointId'> } | { ok: false; retry: boolean; reason: string };

const fail = (retry: boolean, reason: string): Rebuilt => ({ ok: false, retry, reason });

/** Where runtimes (ip netns, containerd, CRI-O) name pod network namespaces. */
export const DEFAULT_NETNS_DIR = '/var/run/netns';

export function rebuildFromKernel(
  host: Rtnl,
  name: string,
  networks: Iterable<NetworkSpec>,
  netnsDir = DEFAULT_NETNS_DIR,
): Rebuilt {
  const hostEnd = host.linkByName(name);
  if (!hostEnd || hostEnd.kind !== 'veth') return fail(false, 'its host veth is gone');
  const bridge = hostEnd.master === undefined ? undefined : host.linkByIndex(hostEnd.master);
  const network = [...networks].find((n) => bridge && bridgeName(n.id) === bridge.name);
  if (!network)
    return fail(true, `its veth is on ${bridge?.name ?? 'no bridge'}, the bridge of no known network`);
  const mac = host
    .listFdb()
    .find((f) => f.index === hostEnd.index && f.master === bridge!.index && (f.state & NUD_NOARP) !== 0)?.mac;
  if (!mac) return fail(false, `bridge ${bridge!.name} has no static entry for its port`);
  for (const ns of safeReaddir(netnsDir)) {
    const path = join(netnsDir, ns);
    let pod: Rtnl;
    try {
      pod = Rtnl.open(path);
    } catch {
      continue; // not a namespace, or gone meanwhile
    }
    try {
      const podEnd = findPodEnd(pod, hostEnd);
      if (!podEnd || (podEnd.master === undefined && podEnd.mac !== mac)) continue;
      const ips = pod
        .listAddresses(podEnd.index)
        .map((a) => a.cidr)
        .filter((c) => !c.toLowerCase().startsWith('fe80:'));
      return {
        ok: true,
        endpoint: {
          containerId: `recovered-${name}`,
          ifname: podEnd.name,
          state: 'ready',
          network: network.name,
          netns: path,
          hostIfname: name,
          hostIfindex: hostEnd.index,
          mac,
          mtu: podEnd.mtu,
          ips,
          ipam: { type: 'castnet' },
          createdAt: new Date().toISOString(),
          recovered: true,
        },
      };
    } finally {
      pod.dispose();
    }
  }
  return fail(false, `its peer is in no namespace under ${netnsDir}`);
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
