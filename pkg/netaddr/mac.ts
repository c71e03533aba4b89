// Ethernet MAC addresses.
import { randomBytes } from 'node:crypto';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Parses "aa:bb:cc:dd:ee:ff"; throws naming the reason. */
export function parseMac(s: string): Buffer {
  if (!MAC_RE.test(s))
    throw new Error(`${JSON.stringify(s)} is not a MAC address (want six hex octets like 02:00:00:00:00:01)`);
  return Buffer.from(s.replace(/:/g, ''), 'hex');
}

export const formatMac = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** Normalizes a unicast MAC to lower case; throws when it is malformed, multicast or all-zero. */
export function normalizeUnicastMac(s: string): string {
  const b = parseMac(s);
  if (b[0] & 1)
    throw new Error(`${JSON.stringify(s)} is a multicast MAC address; an interface needs a unicast one`);
  if (b.every((x) => x === 0)) throw new Error(`${JSON.stringify(s)} is the all-zero MAC address`);
  return formatMac(b);
}

/** A random locally administered unicast MAC. */
export function randomLocalMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfc) | 0x02;
  return formatMac(b);
}
