// Address parsing and canonical text forms, on bytes: the packet path's half of pkg/netaddr (ip.ts
// has the bigint arithmetic IPAM and netlink need). Every address castnet compares (directory keys,
// parsed frames, group status) goes through these functions, so equal addresses have equal strings.
// Parsers here return undefined on bad input and never throw.

const HEX2: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function formatMac(b: Uint8Array, off = 0): string {
  return `${HEX2[b[off]]}:${HEX2[b[off + 1]]}:${HEX2[b[off + 2]]}:${HEX2[b[off + 3]]}:${HEX2[b[off + 4]]}:${HEX2[b[off + 5]]}`;
}

export function parseMac(s: string): Uint8Array | undefined {
  const m =
    /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/.exec(
      s,
    );
  if (!m) return undefined;
  return Uint8Array.from(m.slice(1, 7).map((h) => parseInt(h, 16)));
}

export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function parseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

/** RFC 5952 text: lowercase, no leading zeros, the longest (leftmost) run of >= 2 zero groups as "::". */
export function formatIPv6(b: Uint8Array, off = 0): string {
  let bestStart = -1;
  let bestLen = 0;
  let runStart = -1;
  for (let i = 0; i <= 8; i++) {
    const zero = i < 8 && b[off + 2 * i] === 0 && b[off + 2 * i + 1] === 0;
    if (zero) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      const len = i - runStart;
      if (len > bestLen && len >= 2) {
        bestStart = runStart;
        bestLen = len;
      }
      runStart = -1;
    }
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      s += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    s += ((b[off + 2 * i] << 8) | b[off + 2 * i + 1]).toString(16);
    if (i < 7) s += ':';
  }
  return s;
}

export function parseIPv6(s: string): Uint8Array | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const out = new Uint8Array(16);
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  // A dotted IPv4 tail may only end the whole address (RFC 4291 2.2), never the part before '::'.
  const groupsOf = (part: string, last: boolean): number[] | undefined => {
    if (part === '') return [];
    const words: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (last && i === items.length - 1 && it.includes('.')) {
        const v4 = parseIPv4(it);
        if (!v4) return undefined;
        words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return undefined;
        words.push(parseInt(it, 16));
      }
    }
    return words;
  };
  const head = groupsOf(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groupsOf(halves[1], true) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) return undefined;
  const words = new Array<number>(8).fill(0);
  head.forEach((w, i) => (words[i] = w));
  tail.forEach((w, i) => (words[8 - tail.length + i] = w));
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

export type AddressKind = 'ipv4' | 'ipv6' | 'mac';

export interface Address {
  kind: AddressKind;
  /** Canonical text: dotted IPv4, RFC 5952 IPv6, lowercase colon-separated MAC. */
  text: string;
  bytes: Uint8Array;
}

/** Parses an IPv4, IPv6 or MAC address into its canonical form; undefined if it is none of them. */
export function parseAddress(s: string): Address | undefined {
  const v4 = parseIPv4(s);
  if (v4) return { kind: 'ipv4', text: formatIPv4(v4), bytes: v4 };
  const mac = parseMac(s);
  if (mac) return { kind: 'mac', text: formatMac(mac), bytes: mac };
  const v6 = parseIPv6(s);
  if (v6) return { kind: 'ipv6', text: formatIPv6(v6), bytes: v6 };
  return undefined;
}

const canonicalMemo = new Map<string, string>();
const CANONICAL_MEMO_LIMIT = 1 << 17;

/**
 * The canonical text of `s`, or `s` itself when it is not an address (so lookups simply miss).
 * Memoised: directory indexes are rebuilt on every change and see the same strings again.
 */
export function canonicalAddress(s: string): string {
  let c = canonicalMemo.get(s);
  if (c !== undefined) return c;
  c = parseAddress(s)?.text ?? s;
  if (canonicalMemo.size >= CANONICAL_MEMO_LIMIT) canonicalMemo.clear();
  canonicalMemo.set(s, c);
  return c;
}

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const LIMITED_BROADCAST = '255.255.255.255';

export function isIPv4Multicast(b: Uint8Array, off = 0): boolean {
  return (b[off] & 0xf0) === 0xe0;
}

/** 224.0.0.0/24: link-local control groups, never pruned by snooping (RFC 4541 2.1.2). */
export function isIPv4LinkLocalMulticast(b: Uint8Array, off = 0): boolean {
  return b[off] === 224 && b[off + 1] === 0 && b[off + 2] === 0;
}

/** 232.0.0.0/8: source-specific multicast (RFC 4607). */
export function isIPv4Ssm(b: Uint8Array, off = 0): boolean {
  return b[off] === 232;
}

export function isIPv6Multicast(b: Uint8Array, off = 0): boolean {
  return b[off] === 0xff;
}

/** Link-scope IPv6 multicast (ff02::/16 and its flagged variants such as ff12::, scope nibble 2). */
export function isIPv6LinkLocalMulticast(b: Uint8Array, off = 0): boolean {
  return b[off] === 0xff && (b[off + 1] & 0x0f) === 2;
}

/** ff3x::/32: source-specific multicast (RFC 4607). */
export function isIPv6Ssm(b: Uint8Array, off = 0): boolean {
  return b[off] === 0xff && (b[off + 1] & 0xf0) === 0x30 && b[off + 2] === 0 && b[off + 3] === 0;
}

/** Whether a canonical group address is in an SSM range (232/8, ff3x::/32). */
export function isSsmGroup(group: string): boolean {
  const a = parseAddress(group);
  if (!a) return false;
  return a.kind === 'ipv4' ? isIPv4Ssm(a.bytes) : a.kind === 'ipv6' ? isIPv6Ssm(a.bytes) : false;
}

/** A group address: a multicast IP (224.0.0.0/4, ff00::/8) or a MAC with the I/G bit set. */
export function isGroupAddress(address: string): boolean {
  const a = parseAddress(address);
  if (!a) return false;
  if (a.kind === 'ipv4') return isIPv4Multicast(a.bytes);
  if (a.kind === 'ipv6') return isIPv6Multicast(a.bytes);
  return (a.bytes[0] & 1) === 1;
}

/** 01:00:5e + low 23 bits of the group (RFC 1112). */
export function ipv4MulticastMac(group: Uint8Array): Uint8Array {
  return Uint8Array.of(0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]);
}

/** 33:33 + low 32 bits of the group (RFC 2464). */
export function ipv6MulticastMac(group: Uint8Array): Uint8Array {
  return Uint8Array.of(0x33, 0x33, group[12], group[13], group[14], group[15]);
}

export type AddressFamily = 4 | 6 | 'mac';

const FAMILY = { ipv4: 4, ipv6: 6, mac: 'mac' } as const;

/** 4, 6 or 'mac' for an address castnet compares; undefined when it is none. */
export function addressFamily(a: string): AddressFamily | undefined {
  const p = parseAddress(a);
  return p ? FAMILY[p.kind] : undefined;
}

/** The address family of a CIDR such as 10.1.0.0/16. */
export const cidrFamily = (c: string): AddressFamily | undefined => addressFamily(c.split('/')[0] ?? '');
