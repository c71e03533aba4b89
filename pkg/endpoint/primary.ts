// Primary mode (castnet is the cluster network): what a pod on the primary network gets besides its
// address. Every node's bridge of that network holds the same link-local gateway address, so a pod's
// default route leads to its own node (the kubelet, kube-proxy's Services, other nodes, the
// apiserver) without a per-node gateway to allocate; other pods stay on-link (the flat L2 segment).
import type { CniRoute } from '../cni/types.js';
import { parseCidr } from '../netaddr/ip.js';

/** The pods' IPv4 gateway: the primary network's bridge on every node (pkg/agent/unicast/gateway.ts). */
export const NODE_GATEWAY_V4 = '169.254.1.1';

/** RT_SCOPE_LINK: the gateway is on the pod's link though outside its subnet. */
const SCOPE_LINK = 253;

/** The IPv4 ones of a network's subnets: primary mode's gateway, routes and masquerade are IPv4. */
export const ipv4Subnets = (subnets: readonly string[]): string[] =>
  subnets.filter((s) => parseCidr(s).ip.family === 4);

/** The routes of a pod on the primary network, for the network's IPv4 subnets (none: no routes). */
export function primaryPodRoutes(subnets: readonly string[]): CniRoute[] {
  if (ipv4Subnets(subnets).length === 0) return [];
  return [
    { dst: `${NODE_GATEWAY_V4}/32`, scope: SCOPE_LINK },
    { dst: '0.0.0.0/0', gw: NODE_GATEWAY_V4 },
  ];
}
