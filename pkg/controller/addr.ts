// Address classification for group resolution. Keys compare canonical strings, so every address is
// canonicalized once on the way in (the CRDs already demand canonical IPs; agents' reports may not).
import { isIPv4, isIPv6 } from 'node:net';

export type AddressFamily = 4 | 6 | 'mac';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Canonical text of an IP (RFC 5952 for IPv6) or MAC (lower case); other strings come back unchanged. */
export function canonicalAddress(a: string): string {
  if (isIPv4(a)) return a;
  // The WHATWG URL parser serializes IPv6 hosts in RFC 5952 form.
  if (isIPv6(a) && !a.includes('%')) return new URL(`http://[${a}]/`).hostname.slice(1, -1);
  if (MAC_RE.test(a)) return a.toLowerCase();
  return a;
}

export function familyOf(a: string): AddressFamily | undefined {
  if (isIPv4(a)) return 4;
  if (isIPv6(a)) return 6;
  return MAC_RE.test(a) ? 'mac' : undefined;
}

/** 224.0.0.0/4, ff00::/8, or a MAC with the group bit set. */
export function isGroupAddress(a: string): boolean {
  const f = familyOf(a);
  if (f === 4) return Number(a.split('.')[0]) >= 224 && Number(a.split('.')[0]) <= 239;
  if (f === 6) return canonicalAddress(a).startsWith('ff');
  if (f === 'mac') return (parseInt(a.slice(0, 2), 16) & 1) === 1;
  return false;
}

/** The address family of a CIDR such as 10.1.0.0/16. */
export const cidrFamily = (c: string): AddressFamily | undefined => familyOf(c.split('/')[0] ?? '');
