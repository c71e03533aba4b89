// struct sockaddr_in / sockaddr_in6 encoding for the underlay socket. Pure.
import { isIPv4, isIPv6 } from 'node:net';

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;

export type Family = 4 | 6;

export function familyOf(address: string, field = 'address'): Family {
  if (isIPv4(address)) return 4;
  if (isIPv6(address) && !address.includes('%')) return 6;
  throw new Error(
    `${field} ${JSON.stringify(address)}: not an IPv4 or IPv6 address (zones are not supported)`,
  );
}

function checkPort(port: number, field: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${field} ${port}: must be an integer in 0..65535`);
  }
}

/** The 16 bytes of an IPv6 address (which may embed a dotted IPv4 tail). */
export function ipv6Bytes(address: string): Uint8Array {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const [a, b, c, d] = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (s: string) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const [head, rest] = text.split('::');
  const left = parse(head);
  const groups =
    rest === undefined
      ? left
      : [...left, ...new Array(8 - left.length - parse(rest).length).fill(0), ...parse(rest)];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** RFC 5952 text form of 16 address bytes, as inet_ntop writes it. */
export function formatIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[i * 2] << 8) | b[i * 2 + 1]);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  // Like inet_ntop: IPv4-compatible and IPv4-mapped addresses end in dotted quad.
  if (bestAt === 0 && (bestLen === 6 || (bestLen === 5 && groups[5] === 0xffff))) {
    return `::${bestLen === 5 ? 'ffff:' : ''}${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** The kernel's socket address for (address, port). */
export function encodeSockaddr(address: string, port: number, field = 'address'): Buffer {
  checkPort(port, `${field} port`);
  if (familyOf(address, field) === 4) {
    const sa = Buffer.alloc(SOCKADDR_IN_LEN);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(port, 2);
    address.split('.').forEach((o, i) => (sa[4 + i] = Number(o)));
    return sa;
  }
  const sa = Buffer.alloc(SOCKADDR_IN6_LEN);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  sa.set(ipv6Bytes(address), 8);
  return sa;
}

/** (address, port) of a socket address the kernel wrote; undefined for another family. */
export function decodeSockaddr(sa: Uint8Array): { address: string; port: number } | undefined {
  const family = sa[0] | (sa[1] << 8);
  const port = (sa[2] << 8) | sa[3];
  if (family === AF_INET && sa.length >= SOCKADDR_IN_LEN) {
    return { address: `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}`, port };
  }
  if (family === AF_INET6 && sa.length >= SOCKADDR_IN6_LEN) {
    return { address: formatIpv6(sa.subarray(8, 24)), port };
  }
  return undefined;
}
