// Destination classes drive resolution: unicast goes to one endpoint, broadcast and link-local
// multicast to every endpoint of the network (RFC 4541), other multicast to the group's members.
import {
  BROADCAST_MAC,
  LIMITED_BROADCAST,
  isIPv4LinkLocalMulticast,
  isIPv4Multicast,
  isIPv6LinkLocalMulticast,
  isIPv6Multicast,
} from '../netaddr/address.js';
import type { ParsedFrame } from './ethernet.js';

export type DestinationClass =
  'unicast' | 'broadcast' | 'ipv4-multicast' | 'ipv6-multicast' | 'link-local-multicast' | 'non-ip-multicast';

/**
 * Classifies a parsed frame's destination. `subnetBroadcasts` holds the network's IPv4 directed
 * broadcast addresses (canonical text). The MAC decides first: a unicast MAC is unicast whatever the
 * IP says, so a frame is never delivered more widely than its L2 destination allows.
 */
export function classifyDestination(
  f: ParsedFrame,
  b: Uint8Array,
  subnetBroadcasts: ReadonlySet<string>,
): DestinationClass {
  if (!f.groupMac) return 'unicast';
  const ip = f.ip;
  if (ip?.version === 4) {
    if (ip.dst === LIMITED_BROADCAST || subnetBroadcasts.has(ip.dst)) return 'broadcast';
    if (isIPv4LinkLocalMulticast(b, ip.dstOffset)) return 'link-local-multicast';
    if (isIPv4Multicast(b, ip.dstOffset)) return 'ipv4-multicast';
  } else if (ip?.version === 6) {
    if (isIPv6LinkLocalMulticast(b, ip.dstOffset)) return 'link-local-multicast';
    if (isIPv6Multicast(b, ip.dstOffset)) return 'ipv6-multicast';
  }
  return f.dstMac === BROADCAST_MAC ? 'broadcast' : 'non-ip-multicast';
}
