// The links castnet creates in the node's network namespace, found by their exact name patterns
// (pkg/endpoint/names.ts, pkg/agent/unicast/overlay.ts) so no other plugin's link (cni0, ...) matches.
import { isHostIfname } from '../endpoint/names.js';
import { Rtnl } from '../netlink/rtnl.js';

/** Bridges "cnbr" and VXLAN devices "cnvx" + 6 hex digits, host veths "cn" + 11. Pure. */
export function isCastnetLink(name: string): boolean {
  return /^cn(br|vx)[0-9a-f]{6}$/.test(name) || isHostIfname(name);
}

/**
 * Deletes castnet's links in the current network namespace (or the one at `netnsPath`): veths first (deleting one end removes
 * its pod-side peer), then bridges and VXLAN devices. Returns the names deleted.
 */
export function removeCastnetLinks(netnsPath?: string): string[] {
  const rtnl = Rtnl.open(netnsPath);
  try {
    const names = rtnl
      .listLinks()
      .map((l) => l.name)
      .filter(isCastnetLink)
      .sort((a, b) => Number(/^cn(br|vx)/.test(a)) - Number(/^cn(br|vx)/.test(b)));
    return names.filter((name) => rtnl.deleteLinkByName(name));
  } finally {
    rtnl.dispose();
  }
}
