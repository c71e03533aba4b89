// Ethernet MAC addresses given by users and the kernel (parsing that names the reason, unicast
// checks, random addresses). The packet path's parser and formatter are in address.ts.
import { randomBytes } from 'node:crypto';
import { formatMac } from './address.js';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** The six bytes of "aa:bb:cc:dd:ee:ff"; throws naming the reason. */
export function macBytes(s: string): Buffer {
  if (!MAC_RE.test(s))
    throw new Error(`${JSON.stringify(s)} is not a MAC address (want six hex octets like 02:00:00:00:00:01)`);
  return Buffer.from(s.replace(/:/g, ''), 'hex');
}

/** Normalizes a unicast MAC to lower case; throws when it is malformed, multicast or all-zero. */
export function normalizeUnicastMac(s: string): string {
  const b = macBytes(s);
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
