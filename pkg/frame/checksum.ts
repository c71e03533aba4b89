// Internet checksum (RFC 1071) helpers for IPv4 headers, IGMP and ICMPv6 (with its pseudo-header).

/** 32-bit running sum of 16-bit big-endian words in [start, end); an odd tail byte is padded with zero. */
export function sumWords(b: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (i < end) sum += b[i] << 8;
  return sum;
}

/** Folds a running sum to 16 bits and complements it: the value to store in a checksum field. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function internetChecksum(b: Uint8Array, start: number, end: number, initial = 0): number {
  return finishChecksum(sumWords(b, start, end, initial));
}

/** Sum of the IPv6 pseudo-header (RFC 8200 8.1) for an upper-layer packet of `length` bytes. */
export function ipv6PseudoHeaderSum(
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
  length: number,
  nextHeader: number,
): number {
  let sum = sumWords(src, srcOff, srcOff + 16);
  sum = sumWords(dst, dstOff, dstOff + 16, sum);
  return sum + Math.floor(length / 0x10000) + (length & 0xffff) + nextHeader;
}

/** Writes the IPv4 header checksum of the header at `off` (its IHL gives the length). */
export function fillIPv4HeaderChecksum(b: Uint8Array, off: number): void {
  const ihl = (b[off] & 0x0f) * 4;
  b[off + 10] = 0;
  b[off + 11] = 0;
  const c = internetChecksum(b, off, off + ihl);
  b[off + 10] = c >> 8;
  b[off + 11] = c & 0xff;
}

/** Whether the checksummed region [start, end) (including its stored checksum) verifies. */
export function verifiesChecksum(b: Uint8Array, start: number, end: number, initial = 0): boolean {
  return internetChecksum(b, start, end, initial) === 0;
}
