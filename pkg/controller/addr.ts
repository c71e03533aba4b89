// Address classification for group resolution, on top of pkg/frame's parsers. Keys compare canonical
// strings, so every address is canonicalized on the way in (the CRDs demand canonical IPs; agents'
// reports might not).
import { parseAddress } from '../frame/addr.js';

export { canonicalAddress, isGroupAddress } from '../frame/addr.js';

export type AddressFamily = 4 | 6 | 'mac';

const FAMILY = { ipv4: 4, ipv6: 6, mac: 'mac' } as const;

export function familyOf(a: string): AddressFamily | undefined {
  const p = parseAddress(a);
  return p ? FAMILY[p.kind] : undefined;
}

/** The address family of a CIDR such as 10.1.0.0/16. */
export const cidrFamily = (c: string): AddressFamily | undefined => familyOf(c.split('/')[0] ?? '');
