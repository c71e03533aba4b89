// Allowed address pairs at ADD: the addresses beyond its own that an endpoint declares it may use
// (a VRRP virtual IP). Pure. The data plane admits them as sources (pkg/resolve/address-pairs.ts).
import { CniError, CniErrorCode } from '../cni/types.js';
import type { NetworkSpec } from '../lookup/port.js';
import { contains, parseCidr, parseIp } from '../netaddr/ip.js';

/**
 * Each declared address (canonical, from the netconf) must lie in one of the network's subnets: a
 * flat segment reaches nothing else, and an address outside it would only widen what a pod may
 * forge. Code 7 naming the entry otherwise.
 */
export function checkAllowedAddresses(addresses: readonly string[], network: NetworkSpec): void {
  const subnets = network.subnets.map(parseCidr);
  addresses.forEach((a, i) => {
    const ip = parseIp(a);
    if (!subnets.some((s) => contains(s, ip)))
      throw new CniError(
        CniErrorCode.InvalidConfig,
        `args.cni.allowedAddressPairs[${i}].ipAddress: ${a} is not in a subnet of network ${JSON.stringify(network.name)} (${network.subnets.join(', ')})`,
      );
  });
}
