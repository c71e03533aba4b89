// castnet IPAM: one address per subnet of the network from this node's pools, or the addresses the
// runtime asked for (runtimeConfig.ips). Pure: the endpoint table supplies what is in use.
import { CniError, CniErrorCode } from '../cni/types.js';
import type { NetworkSpec } from '../lookup/port.js';
import { formatIp, parseCidr, parseIp, type Cidr, type Ip } from '../netaddr/ip.js';
import {
  assigned,
  carvePool,
  DEFAULT_POOL_SIZES,
  nextFree,
  poolKey,
  subnetOf,
  type Pool,
  type PoolSizes,
} from './pool.js';
import { errorMessage } from '../base/errors.js';

/** This node's pools of `network`, one per subnet. */
export function poolsOf(
  network: NetworkSpec,
  poolIndex: number,
  sizes: PoolSizes = DEFAULT_POOL_SIZES,
): Pool[] {
  return network.subnets.map((s) => {
    try {
      return carvePool(s, poolIndex, sizes);
    } catch (e) {
      throw new CniError(
        CniErrorCode.InvalidConfig,
        `network ${JSON.stringify(network.name)}: ${errorMessage(e)}`,
      );
    }
  });
}

export interface AllocationInput {
  network: NetworkSpec;
  pools: Pool[];
  /** Plain addresses already held on this network. */
  used: ReadonlySet<string>;
  /** Last address handed out per pool (poolKey); updated in place. */
  cursors: Map<string, string>;
  /** runtimeConfig.ips: specific addresses, with or without a prefix length. */
  requested?: string[];
  poolIndex: number;
}

/** Addresses (address/subnet-prefix) for one endpoint. Throws CniError 100 when a pool is full. */
export function allocateAddresses(inp: AllocationInput): string[] {
  if (inp.requested && inp.requested.length > 0) return requestedAddresses(inp);
  return inp.pools.map((pool) => {
    const key = poolKey(pool);
    const ip = nextFree(pool, inp.used, inp.cursors.get(key));
    if (!ip) {
      throw new CniError(
        CniErrorCode.AddressExhausted,
        `network ${JSON.stringify(inp.network.name)}: pool ${key} (pool index ${inp.poolIndex}) has no free address`,
      );
    }
    inp.cursors.set(key, formatIp(ip));
    return assigned(pool, ip);
  });
}

function requestedAddresses(inp: AllocationInput): string[] {
  const subnets: Cidr[] = inp.pools.map((p) => p.subnet);
  const seen = new Set<string>();
  return (inp.requested ?? []).map((text, i) => {
    const field = `runtimeConfig.ips[${i}]`;
    let ip: Ip;
    try {
      ip = text.includes('/') ? parseCidr(text).ip : parseIp(text);
    } catch (e) {
      throw new CniError(CniErrorCode.InvalidConfig, `${field}: ${errorMessage(e)}`);
    }
    const subnet = subnetOf(subnets, ip);
    if (!subnet) {
      throw new CniError(
        CniErrorCode.InvalidConfig,
        `${field}: ${text} is not in any subnet of network ${JSON.stringify(inp.network.name)} (${inp.network.subnets.join(', ')})`,
      );
    }
    const plain = formatIp(ip);
    if (inp.used.has(plain) || seen.has(plain)) {
      throw new CniError(
        CniErrorCode.InvalidConfig,
        `${field}: ${plain} is already in use on network ${JSON.stringify(inp.network.name)}`,
      );
    }
    seen.add(plain);
    return `${plain}/${subnet.prefix}`;
  });
}
