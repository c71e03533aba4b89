// Tenancy: which namespaces may use a network, and which of the MulticastGroups claiming one address
// on a network act. One rule, applied by the agent (to the ADDs it serves and the directory it
// resolves from) and by the controller (for the groups' conditions), so traffic and status agree
// (docs/membership.md "Several groups at one address", docs/api.md).
//
// - A network's `allowedNamespaces` lists the namespaces whose pods may attach and whose groups may
//   act on it. Unset: every namespace (what networks did before the field existed).
// - A group acts only when its namespace may use its network.
// - Of the acting groups at one (network, address), the namespace of the oldest (creation time, then
//   namespace, then name) owns the address: its groups there act together, as before; groups of
//   any other namespace there are refused (AddressConflict). A later tenant therefore cannot
//   change who receives, or who may send to, an address another tenant already uses.
// - A group's edges (group addresses among its static members) lead only to addresses its own
//   namespace owns or no one owns, and its static members name endpoints of its own namespace only.
// Pure.
import { canonicalAddress } from '../netaddr/address.js';

/** The part of a network the rule reads. */
export interface NetworkAccess {
  name: string;
  /** Namespaces that may attach and declare groups; undefined: every namespace. */
  allowedNamespaces?: readonly string[];
}

/** The part of a group the rule reads. */
export interface GroupClaim {
  namespace: string;
  name: string;
  network: string;
  address: string;
  /** Creation time (ms since the epoch); unknown sorts after every known time. */
  createdAt?: number;
}

export type GroupRefusal = 'NamespaceNotAllowed' | 'AddressConflict';

export type GroupStanding =
  { acts: true } | { acts: false; reason: GroupRefusal; message: string; field: string };

const ACTS: GroupStanding = Object.freeze({ acts: true });

/** Whether pods and groups of `namespace` (undefined: not known, e.g. no K8S_POD_NAMESPACE) may use `net`. */
export function namespaceAllowed(net: NetworkAccess, namespace: string | undefined): boolean {
  const allowed = net.allowedNamespaces;
  return allowed === undefined || (namespace !== undefined && allowed.includes(namespace));
}

/** Why an attachment from `namespace` to `net` is refused, naming the network, namespace and field; or undefined. */
export function attachRefusal(net: NetworkAccess, namespace: string | undefined): string | undefined {
  if (namespaceAllowed(net, namespace)) return undefined;
  const who =
    namespace === undefined
      ? 'a pod with no namespace (CNI_ARGS K8S_POD_NAMESPACE unset)'
      : `namespace "${namespace}"`;
  return `VirtualNetwork "${net.name}" does not allow ${who}: spec.allowedNamespaces is [${(net.allowedNamespaces ?? []).join(', ')}]`;
}

/** The namespace an endpoint belongs to (its pod's, else its VM's); undefined when attached outside Kubernetes. */
export function endpointNamespace(e: {
  pod?: { namespace: string };
  vm?: { namespace: string };
}): string | undefined {
  return e.pod?.namespace ?? e.vm?.namespace;
}

/**
 * Whether a group of `groupNamespace` may name this endpoint as a static member: it must be of the
 * same namespace. An endpoint attached outside Kubernetes (podman, cnitool) belongs to no tenant.
 */
export function staticMemberAllowed(
  groupNamespace: string,
  e: { pod?: { namespace: string }; vm?: { namespace: string } },
): boolean {
  const ns = endpointNamespace(e);
  return ns === undefined || ns === groupNamespace;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Oldest first; unknown times last; then namespace and name: a total order, the same everywhere.
 * Creation times have the apiserver's resolution (a second): objects made in the same second are
 * ordered by namespace and name.
 */
export function olderFirst(
  a: Pick<GroupClaim, 'createdAt' | 'namespace' | 'name'>,
  b: Pick<GroupClaim, 'createdAt' | 'namespace' | 'name'>,
): number {
  const ta = a.createdAt ?? Number.POSITIVE_INFINITY;
  const tb = b.createdAt ?? Number.POSITIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}

/**
 * The standing of the groups claiming one (network, address): `claims` must all share both. The
 * verdict does not depend on their order.
 */
export function judgeAddress<G>(
  claims: readonly G[],
  claimOf: (g: G) => GroupClaim,
  network: NetworkAccess | undefined,
): Map<G, GroupStanding> {
  const out = new Map<G, GroupStanding>();
  const admitted: G[] = [];
  for (const g of claims) {
    const c = claimOf(g);
    if (network && !namespaceAllowed(network, c.namespace)) {
      out.set(g, {
        acts: false,
        reason: 'NamespaceNotAllowed',
        field: 'spec.network',
        message: `VirtualNetwork "${network.name}" does not allow namespace "${c.namespace}" (spec.allowedNamespaces): the group is ignored`,
      });
    } else admitted.push(g);
  }
  if (admitted.length === 0) return out;
  const owner = admitted.reduce((a, b) => (olderFirst(claimOf(a), claimOf(b)) <= 0 ? a : b));
  const o = claimOf(owner);
  for (const g of admitted) {
    const c = claimOf(g);
    out.set(
      g,
      c.namespace === o.namespace
        ? ACTS
        : {
            acts: false,
            reason: 'AddressConflict',
            field: 'spec.address',
            message: `${canonicalAddress(c.address)} on network "${c.network}" belongs to namespace "${o.namespace}" (its oldest group there is ${o.namespace}/${o.name}): the group is ignored`,
          },
    );
  }
  return out;
}

/** The standing of every group, judged per (network, canonical address). */
export function judgeGroups<G>(
  groups: readonly G[],
  claimOf: (g: G) => GroupClaim,
  networkOf: (name: string) => NetworkAccess | undefined,
): Map<G, GroupStanding> {
  const byAddress = new Map<string, G[]>();
  for (const g of groups) {
    const c = claimOf(g);
    const key = `${c.network}|${canonicalAddress(c.address)}`;
    const list = byAddress.get(key);
    if (list) list.push(g);
    else byAddress.set(key, [g]);
  }
  const out = new Map<G, GroupStanding>();
  for (const list of byAddress.values()) {
    for (const [g, s] of judgeAddress(list, claimOf, networkOf(claimOf(list[0]).network))) out.set(g, s);
  }
  return out;
}
