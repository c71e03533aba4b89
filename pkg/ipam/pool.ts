// castnet's own IPAM, pure part: each node owns one block (its pool) of each network subnet, and
// allocates from it round-robin so a released address is not handed out again right away.
import {
  bitsOf,
  Cidr,
  contains,
  formatCidr,
  formatIp,
  Ip,
  lastOf,
  networkOf,
  parseCidr,
  parseIp,
} from '../netaddr/ip.js';

export interface PoolSizes {
  /** Prefix length of a node's IPv4 block (default 24: 254 usable addresses). */
  v4: number;
  /** Prefix length of a node's IPv6 block (default 120: 255 usable addresses). */
  v6: number;
}

export const DEFAULT_POOL_SIZES: PoolSizes = { v4: 24, v6: 120 };

/** One node's block of one subnet. Addresses handed out carry the subnet's prefix length. */
export interface Pool {
  subnet: Cidr;
  block: Cidr;
  first: bigint;
  last: bigint;
}

export const poolKey = (p: Pool): string => formatCidr(p.block);

/**
 * Block number `index` of `subnet`. Its first address is never handed out (the subnet-router anycast
 * address in IPv6, the network address in IPv4), nor is an IPv4 block's last (the broadcast when the
 * block is the whole subnet): castnet networks are flat L2 segments with no gateway to reserve.
 */
export function carvePool(subnet: string, index: number, sizes: PoolSizes = DEFAULT_POOL_SIZES): Pool {
  const s = parseCidr(subnet);
  const net: Cidr = { ip: networkOf(s), prefix: s.prefix };
  const fam = s.ip.family;
  const blockPrefix = Math.max(s.prefix, fam === 4 ? sizes.v4 : sizes.v6);
  const blocks = 1n << BigInt(blockPrefix - s.prefix);
  if (!Number.isInteger(index) || index < 0 || BigInt(index) >= blocks) {
    throw new Error(
      `pool index ${index} is out of range for subnet ${subnet}: it has ${blocks} /${blockPrefix} block(s)`,
    );
  }
  const start = net.ip.value + BigInt(index) * (1n << BigInt(bitsOf(fam) - blockPrefix));
  const block: Cidr = { ip: { family: fam, value: start }, prefix: blockPrefix };
  const first = start + 1n;
  const last = lastOf(block).value - (fam === 4 ? 1n : 0n);
  if (first > last)
    throw new Error(`subnet ${subnet} is too small: its /${blockPrefix} block has no usable address`);
  return { subnet: net, block, first, last };
}

const ipOf = (p: Pool, v: bigint): Ip => ({ family: p.subnet.ip.family, value: v });

/** The address as assigned to an interface: address/subnet-prefix. */
export const assigned = (p: Pool, ip: Ip): string => `${formatIp(ip)}/${p.subnet.prefix}`;

/**
 * The next free address of `pool` after `cursor` (wrapping around), or undefined when the pool is
 * exhausted. `used` holds plain addresses (formatIp form).
 */
export function nextFree(pool: Pool, used: ReadonlySet<string>, cursor?: string): Ip | undefined {
  const size = pool.last - pool.first + 1n;
  let start = pool.first;
  if (cursor !== undefined) {
    const c = parseIp(cursor).value;
    if (c >= pool.first && c < pool.last) start = c + 1n;
  }
  for (let i = 0n; i < size; i++) {
    const v = pool.first + ((start - pool.first + i) % size);
    if (!used.has(formatIp(ipOf(pool, v)))) return ipOf(pool, v);
  }
  return undefined;
}

/** The subnet of `subnets` holding `ip`, if any. */
export function subnetOf(subnets: Cidr[], ip: Ip): Cidr | undefined {
  return subnets.find((s) => contains(s, ip));
}
