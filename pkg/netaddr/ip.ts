// IP addresses and prefixes as bigints: parsing, formatting and the arithmetic IPAM needs.
import { isIPv4, isIPv6 } from 'node:net';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from './address.js';

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

/** An address with a prefix length, e.g. 10.1.2.3/24 (the address is kept as written). */
export interface Cidr {
  ip: Ip;
  prefix: number;
}

export const bitsOf = (f: Family): number => (f === 4 ? 32 : 128);

export function parseIp(s: string): Ip {
  // Validity as node:net defines it (no zones); the bytes come from address.ts.
  const bytes = isIPv4(s) ? parseIPv4(s) : isIPv6(s) && !s.includes('%') ? parseIPv6(s) : undefined;
  if (!bytes) throw new Error(`${JSON.stringify(s)} is not an IP address`);
  return ipFromBytes(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
}

/** Canonical text: dotted IPv4, RFC 5952 IPv6. */
export function formatIp(ip: Ip): string {
  const b = ipToBytes(ip);
  return ip.family === 4 ? formatIPv4(b) : formatIPv6(b);
}

export function parseCidr(s: string): Cidr {
  const slash = s.indexOf('/');
  if (slash < 0) throw new Error(`${JSON.stringify(s)} is not a CIDR: missing /prefix`);
  const ip = parseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(p) ? Number(p) : NaN;
  if (!(prefix >= 0 && prefix <= bitsOf(ip.family))) {
    throw new Error(`${JSON.stringify(s)} is not a CIDR: prefix must be 0..${bitsOf(ip.family)}`);
  }
  return { ip, prefix };
}

/** The family of an IP address; throws naming `field` when it is none (zones are not supported). */
export function ipFamily(address: string, field = 'address'): Family {
  const ip = tryParseIp(address);
  if (!ip)
    throw new Error(
      `${field} ${JSON.stringify(address)}: not an IPv4 or IPv6 address (zones are not supported)`,
    );
  return ip.family;
}

/** parseIp for input that may be bad where a miss is answer enough (a lookup, a filter). */
export function tryParseIp(s: string): Ip | undefined {
  try {
    return parseIp(s);
  } catch {
    return undefined;
  }
}

/** parseCidr, or undefined where that throws. */
export function tryParseCidr(s: string): Cidr | undefined {
  try {
    return parseCidr(s);
  } catch {
    return undefined;
  }
}

export const formatCidr = (c: Cidr): string => `${formatIp(c.ip)}/${c.prefix}`;

function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(bitsOf(family) - prefix)) - 1n;
}

/** The first address of the prefix. */
export function networkOf(c: Cidr): Ip {
  return { family: c.ip.family, value: c.ip.value & ~hostMask(c.ip.family, c.prefix) };
}

/** The last address of the prefix (the IPv4 broadcast address). */
export function lastOf(c: Cidr): Ip {
  return { family: c.ip.family, value: c.ip.value | hostMask(c.ip.family, c.prefix) };
}

/** The directed broadcast address of an IPv4 subnet; undefined for IPv6 and /31, /32 (RFC 3021). */
export function subnetBroadcast(c: Cidr): string | undefined {
  return c.ip.family === 4 && c.prefix <= 30 ? formatIp(lastOf(c)) : undefined;
}

export function contains(c: Cidr, ip: Ip): boolean {
  return ip.family === c.ip.family && networkOf({ ip, prefix: c.prefix }).value === networkOf(c).value;
}

export function ipToBytes(ip: Ip): Buffer {
  const n = bitsOf(ip.family) / 8;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Number((ip.value >> BigInt(8 * (n - 1 - i))) & 0xffn);
  return b;
}

export function ipFromBytes(b: Buffer): Ip {
  if (b.length !== 4 && b.length !== 16) throw new Error(`an IP address has 4 or 16 bytes, not ${b.length}`);
  return { family: b.length === 4 ? 4 : 6, value: BigInt('0x' + b.toString('hex')) };
}
