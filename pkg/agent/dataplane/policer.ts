// Per-endpoint rate limits on the frames the agent copies to other endpoints (VirtualNetwork
// spec.rateLimits): one token bucket per endpoint and kind (broadcast, ARP, multicast). It runs first
// on a captured frame, before any parsing, so a flood costs the agent a few byte reads per frame and
// never reaches the resolver, the underlay or another node. Pure: time is passed in.
import { ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP } from '../../frame/ethernet.js';
import { VNET_HDR_LEN } from '../../frame/vnet.js';
import { LIMITS } from '../../lookup/limits.js';
import type { Rate, RateLimits } from '../../lookup/port.js';

export const POLICED_KINDS = ['broadcast', 'arp', 'multicast'] as const;
export type PolicedKind = (typeof POLICED_KINDS)[number];

const DEFAULTS: Record<PolicedKind, Rate> = {
  broadcast: { packetsPerSecond: LIMITS.broadcastPpsDefault, burst: LIMITS.broadcastBurstDefault },
  arp: { packetsPerSecond: LIMITS.arpPpsDefault, burst: LIMITS.arpBurstDefault },
  multicast: { packetsPerSecond: LIMITS.multicastPpsDefault, burst: LIMITS.multicastBurstDefault },
};

/** A network's limits with the defaults filled in. */
export function effectiveRate(limits: RateLimits | undefined, kind: PolicedKind): Rate {
  return { packetsPerSecond: packetsPerSecond(limits, kind), burst: burst(limits, kind) };
}

// Field by field, without building a Rate: admit() runs for every captured BUM frame.
const packetsPerSecond = (limits: RateLimits | undefined, kind: PolicedKind): number =>
  limits?.[kind]?.packetsPerSecond ?? DEFAULTS[kind].packetsPerSecond;
const burst = (limits: RateLimits | undefined, kind: PolicedKind): number =>
  limits?.[kind]?.burst ?? DEFAULTS[kind].burst;

/**
 * The kind of a captured frame (virtio_net_hdr + Ethernet), from at most three reads: ARP (behind up
 * to two VLAN tags), broadcast, multicast; undefined for unicast and runts (the parser drops those).
 */
export function classifyFrame(bytes: Uint8Array): PolicedKind | undefined {
  const eth = VNET_HDR_LEN;
  if (bytes.length < eth + 14) return undefined;
  let off = eth + 12;
  let type = (bytes[off]! << 8) | bytes[off + 1]!;
  for (let tags = 0; tags < 2 && (type === ETH_P_8021Q || type === ETH_P_8021AD); tags++) {
    off += 4;
    if (bytes.length < off + 2) return undefined;
    type = (bytes[off]! << 8) | bytes[off + 1]!;
  }
  if (type === ETH_P_ARP) return 'arp';
  if ((bytes[eth]! & 1) === 0) return undefined;
  for (let i = eth; i < eth + 6; i++) if (bytes[i] !== 0xff) return 'multicast';
  return 'broadcast';
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * The token buckets of the local endpoints. At most one entry per local endpoint (the agent forgets
 * an endpoint when it detaches it), so its size is bounded by the node's endpoints.
 */
export class Policer {
  private readonly buckets = new Map<number, Partial<Record<PolicedKind, Bucket>>>();

  /** Takes a token from `endpointId`'s bucket for `kind` at `nowMs`; false: over its rate, drop. */
  admit(endpointId: number, kind: PolicedKind, limits: RateLimits | undefined, nowMs: number): boolean {
    const cap = burst(limits, kind);
    let perKind = this.buckets.get(endpointId);
    if (!perKind) this.buckets.set(endpointId, (perKind = {}));
    const b = (perKind[kind] ??= { tokens: cap, at: nowMs });
    // A clock that steps back refills nothing; the burst caps what idle time earns.
    const earned = (Math.max(0, nowMs - b.at) * packetsPerSecond(limits, kind)) / 1000;
    b.tokens = Math.min(cap, b.tokens + earned);
    b.at = nowMs;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  forget(endpointId: number): void {
    this.buckets.delete(endpointId);
  }

  get size(): number {
    return this.buckets.size;
  }
}
