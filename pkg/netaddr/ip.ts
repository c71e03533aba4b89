// IP addresses and prefixes as bigints: parsing, formatting and the arithmetic IPAM needs.
import { isIPv4, isIPv6 } from 'node:net';

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
  if (isIPv4(s)) {
    return { family: 4, value: s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(o), 0n) };
  }
  if (!isIPv6(s) || s.includes('%')) throw new Error(`${JSON.stringify(s)} is not an IP address`);
  let text = s;
  if (text.includes('.')) {
    // Embedded IPv4 (e.g. ::ffff:1.2.3.4): rewrite it as the last two groups.
    const at = text.lastIndexOf(':') + 1;
    const v4 = parseIp(text.slice(at)).value;
    text = `${text.slice(0, at)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (p: string | undefined): bigint[] => (p ? p.split(':').map((g) => BigInt('0x' + g)) : []);
  const hi = groups(head);
  const lo = groups(rest);
  const fill = rest === undefined ? [] : Array<bigint>(8 - hi.length - lo.length).fill(0n);
  const all = [...hi, ...fill, ...lo];
  return { family: 6, value: all.reduce((acc, g) => (acc << 16n) | g, 0n) };
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => ((ip.value >> s) & 0xffn).toString()).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
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
