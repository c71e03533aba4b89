// Address classification for group resolution, on top of pkg/frame's parsers. Keys compare canonical
// strings, so every address is canonicalized on the way in (the CRDs demand canonical IPs; agents'
// reports might not).
import { isIPv4Multicast, isIPv6Multicast, parseAddress } from '../frame/addr';

export { canonicalAddress } from '../frame/addr';

export type AddressFamily = 4 | 6 | 'mac';

const FAMILY = { ipv4: 4, ipv6: 6, mac: 'mac' } as const;

export function familyOf(a: string): AddressFamily | undefined {
  const p = parseAddress(a);
  return p ? FAMILY[p.kind] : undefined;
}

/** 224.0.0.0/4, ff00::/8, or a MAC with the group bit set. */
export function isGroupAddress(a: string): boolean {
  const p = parseAddress(a);
  if (!p) return false;
  if (p.kind === 'ipv4') return isIPv4Multicast(p.bytes);
  if (p.kind === 'ipv6') return isIPv6Multicast(p.bytes);
  return (p.bytes[0] & 1) === 1;
}

/** The address family of a CIDR such as 10.1.0.0/16. */
export const cidrFamily = (c: string): AddressFamily | undefined => familyOf(c.split('/')[0] ?? '');
