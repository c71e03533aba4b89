// struct sockaddr_in / sockaddr_in6 encoding for the underlay socket. Pure. Address bytes and text
// come from pkg/netaddr.
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../netaddr/address.js';
import { ipFamily, type Family } from '../netaddr/ip.js';
import { AF_INET, AF_INET6 } from '../sys/constants.js';

export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;

function checkPort(port: number, field: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${field} ${port}: must be an integer in 0..65535`);
  }
}

/** Address bytes of a valid (ipFamily-checked) address. */
function addressBytes(address: string, family: Family): Uint8Array {
  const b = family === 4 ? parseIPv4(address) : parseIPv6(address);
  if (!b) throw new Error(`address ${JSON.stringify(address)}: not an IPv${family} address`);
  return b;
}

/**
 * RFC 5952 text form of 16 address bytes, as inet_ntop writes it: like formatIPv6, except that
 * IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses end in a dotted quad.
 */
export function formatIPv6Ntop(b: Uint8Array, off = 0): string {
  const word = (i: number) => (b[off + 2 * i] << 8) | b[off + 2 * i + 1];
  if ((word(0) | word(1) | word(2) | word(3) | word(4)) === 0) {
    if (word(5) === 0xffff) return `::ffff:${formatIPv4(b, off + 12)}`;
    if (word(5) === 0 && word(6) !== 0) return `::${formatIPv4(b, off + 12)}`;
  }
  return formatIPv6(b, off);
}

/** The kernel's socket address for (address, port). */
export function encodeSockaddr(address: string, port: number, field = 'address'): Buffer {
  checkPort(port, `${field} port`);
  const family = ipFamily(address, field);
  const v4 = family === 4;
  const sa = Buffer.alloc(v4 ? SOCKADDR_IN_LEN : SOCKADDR_IN6_LEN);
  sa.writeUInt16LE(v4 ? AF_INET : AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  sa.set(addressBytes(address, family), v4 ? 4 : 8); // sin_addr; sin6_addr after sin6_flowinfo
  return sa;
}

/** (address, port) of a socket address the kernel wrote; undefined for another family. */
export function decodeSockaddr(sa: Uint8Array): { address: string; port: number } | undefined {
  const family = sa[0] | (sa[1] << 8);
  const port = (sa[2] << 8) | sa[3];
  if (family === AF_INET && sa.length >= SOCKADDR_IN_LEN) {
    return { address: formatIPv4(sa, 4), port };
  }
  if (family === AF_INET6 && sa.length >= SOCKADDR_IN6_LEN) {
    return { address: formatIPv6Ntop(sa, 8), port };
  }
  return undefined;
}
