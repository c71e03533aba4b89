// The size limits of what a node publishes, in one place. The CRDs (charts/castnet/crds) declare the
// same numbers, and pkg/lookup/limits.test.ts fails when the two disagree: an agent that accepts what
// the apiserver then rejects would retry that write forever and publish nothing else from its node.

const limits = {
  /** MembershipReport spec.endpoints maxItems. */
  endpointsPerNode: 1024,
  /** MembershipReport spec.endpoints[].ips maxItems. */
  ipsPerEndpoint: 4,
  /**
   * MembershipReport spec.endpoints[].allowedAddresses (and .claims) maxItems: the addresses beyond
   * its own an endpoint may use (allowed address pairs, e.g. a VRRP virtual IP). OpenStack's default.
   */
  allowedAddressesPerEndpoint: 10,
  /** MembershipReport spec.memberships maxItems. */
  membershipsPerNode: 8192,
  /** MembershipReport spec.memberships[].filter.sources maxItems: an IGMPv3/MLDv2 record's sources. */
  sourcesPerMembership: 64,
  /** VirtualNetwork spec.multicast.maxGroupsPerEndpoint: default and maximum. */
  groupsPerEndpointDefault: 256,
  groupsPerEndpointMax: 4096,
  /** VirtualNetwork spec.allowedNamespaces maxItems. */
  allowedNamespaces: 256,
  /**
   * VirtualNetwork spec.rateLimits: frames per second (and burst) one endpoint may send of each kind
   * the agent copies to other endpoints. Broadcast and ARP are control traffic at a host's normal
   * rates; multicast is data (market data streams run at tens of thousands a second), so its default
   * sits above what one agent forwards and only a lower setting shares the agent between endpoints.
   */
  broadcastPpsDefault: 1000,
  broadcastBurstDefault: 2000,
  arpPpsDefault: 200,
  arpBurstDefault: 400,
  multicastPpsDefault: 50000,
  multicastBurstDefault: 10000,
  /** Maximum of every rate and burst above. */
  ratePpsMax: 1000000,
  /** MembershipReport status.underlay.peers maxItems: the peers a node's health report lists. */
  healthPeers: 5000,
  /** MulticastGroup status.members maxItems. */
  statusMembers: 5000,
  /**
   * Bytes of a report's spec and of a group's status, as JSON. etcd refuses objects over 1.5 MiB, and
   * metadata (server-side apply's managedFields lists every endpoint's key) comes on top.
   */
  reportBytes: 768 * 1024,
  statusBytes: 768 * 1024,
};

export const LIMITS: { readonly [K in keyof typeof limits]: number } = Object.freeze(limits);

/** JSON size in bytes, as the apiserver will store it (before its own metadata). */
export const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));
