// VM address reservations, pure part (docs/kubevirt.md "Addresses"): which reservation holds each
// address, what castnet IPAM must skip on every node, and whether a VM may take its own back.
// - A reservation counts only on a network that exists and allows its VM's namespace, so a tenant
//   cannot reserve (and so deny to others) addresses of a network it may not use.
// - Of several reservations of one address (two VMs asked for the same runtimeConfig.ips at once, or
//   an object written by hand), the oldest holds it (creation time, then namespace, then VMI name),
//   the same rule as MulticastGroups at one address (pkg/resolve/tenancy.ts): a later tenant cannot
//   take an address another VM holds.
import { canonicalAddress } from '../netaddr/address.js';
import type { AddressReservation, VmRef } from '../lookup/port.js';
import { namespaceAllowed, olderFirst, type NetworkAccess } from '../resolve/tenancy.js';

/** network -> canonical address -> the reservation holding it. */
export type AddressHolders = Map<string, Map<string, AddressReservation>>;

export const vmKey = (vm: VmRef): string => `${vm.namespace}/${vm.name}`;

const sameVm = (a: VmRef, b: VmRef): boolean => a.namespace === b.namespace && a.name === b.name;

const claimant = (r: AddressReservation) => ({
  createdAt: r.createdAt,
  namespace: r.vm.namespace,
  name: r.vm.name,
});

/** Oldest first, by the groups' rule (olderFirst): the same order on every node. */
export function olderReservation(a: AddressReservation, b: AddressReservation): number {
  return olderFirst(claimant(a), claimant(b));
}

/** Which reservation holds each address of each network; the verdict does not depend on their order. */
export function addressHolders(
  networks: readonly NetworkAccess[],
  reservations: readonly AddressReservation[],
): AddressHolders {
  const byName = new Map(networks.map((n) => [n.name, n]));
  const out: AddressHolders = new Map();
  for (const r of reservations) {
    const net = byName.get(r.network);
    if (!net || !namespaceAllowed(net, r.vm.namespace)) continue;
    let held = out.get(r.network);
    if (!held) out.set(r.network, (held = new Map()));
    for (const ip of r.ips) {
      const a = canonicalAddress(ip);
      const holder = held.get(a);
      if (!holder || olderReservation(r, holder) < 0) held.set(a, r);
    }
  }
  return out;
}

/** network -> the addresses reservations hold: castnet IPAM hands none of them to anyone else. */
export function reservedAddresses(holders: AddressHolders): Map<string, Set<string>> {
  return new Map([...holders].map(([network, held]) => [network, new Set(held.keys())]));
}

/** The reservation of another VM than `vm` that holds `ip` on `network`, if any. */
export function heldByOther(
  holders: AddressHolders,
  network: string,
  ip: string,
  vm: VmRef | undefined,
): AddressReservation | undefined {
  const holder = holders.get(network)?.get(canonicalAddress(ip));
  return holder && !(vm && sameVm(holder.vm, vm)) ? holder : undefined;
}

/**
 * Whether `r` (read fresh, perhaps not in `holders` yet) may be given back to its VM: undefined when
 * it may, else why not, naming the address and the VM that holds it.
 */
export function reservationRefusal(holders: AddressHolders, r: AddressReservation): string | undefined {
  for (const ip of r.ips) {
    const other = heldByOther(holders, r.network, ip, r.vm);
    if (other && olderReservation(other, r) < 0)
      return `${canonicalAddress(ip)} on network ${JSON.stringify(r.network)} is held by the older reservation of VM ${vmKey(other.vm)}`;
  }
  return undefined;
}

/** Whether two address lists hold the same addresses (any order, any text form). */
export function sameAddresses(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a.map(canonicalAddress));
  return a.length === b.length && b.every((ip) => set.has(canonicalAddress(ip)));
}
