// A VM keeps its addresses (docs/kubevirt.md "Addresses"). At the ADD of a confirmed VM's pod with
// castnet IPAM: the VM's reservation on the network, read fresh from the lookup service, becomes the
// ADD's requested addresses (runtimeConfig.ips, when the runtime passes some, still wins); without
// one, castnet IPAM allocates as for any pod, and the addresses it got are reserved for the VM
// before the pod is wired. The pod's DEL leaves the reservation; deleting the VM releases it.
import { CniError, CniErrorCode } from '../cni/types.js';
import { errorMessage } from '../base/errors.js';
import type { Logger } from '../log/log.js';
import { contains, tryParseCidr, tryParseIp } from '../netaddr/ip.js';
import type { AddressReservation, LookupService, VmOwner, VmRef } from '../lookup/port.js';
import { reservationRefusal, sameAddresses, vmKey, type AddressHolders } from '../ipam/reservations.js';

export interface VmAddressPlan {
  /** The addresses the ADD asks for (runtimeConfig.ips); absent: castnet IPAM allocates. */
  ips?: string[];
  /**
   * Reserves what the ADD got (address/prefix) before the pod is wired; rejects when another node
   * reserved other addresses for the VM at the same moment (the runtime retries and gets those).
   */
  reserve?: (assigned: string[]) => Promise<void>;
}

const plain = (a: string): string => a.split('/')[0]!;

/** Why addresses do not fit the network's subnets (the network was changed), or undefined. */
function outsideSubnets(ips: readonly string[], subnets: readonly string[] | undefined): string | undefined {
  if (!subnets) return undefined;
  const cidrs = subnets.map(tryParseCidr).filter((c) => c !== undefined);
  const out = ips.find((a) => {
    const ip = tryParseIp(a);
    return !ip || !cidrs.some((c) => contains(c, ip));
  });
  return out && `${out} is in none of the network's subnets (${subnets.join(', ')})`;
}

/** What the ADD of `vm`'s pod on `network` asks for, and how it reserves what it gets. */
export async function planVmAddresses(o: {
  lookup: Pick<LookupService, 'addressReservation' | 'reserveAddresses'>;
  vm: VmRef;
  owner?: VmOwner;
  network: string;
  /** runtimeConfig.ips, or the running endpoint's addresses a migration target takes over. */
  requested?: string[];
  /** The directory's reservations (addressHolders). */
  holders: AddressHolders;
  /** The network's subnets: a reservation with an address outside them (they changed) is not given back. */
  subnets?: readonly string[];
  log: Logger;
}): Promise<VmAddressPlan> {
  const { lookup, vm, owner, network } = o;
  if (!lookup.addressReservation || !lookup.reserveAddresses) return {};
  const who = `VM ${vmKey(vm)} on network ${JSON.stringify(network)}`;
  let current: AddressReservation | undefined;
  try {
    current = await lookup.addressReservation(vm, network);
  } catch (err) {
    throw new CniError(
      CniErrorCode.TryAgainLater,
      `address reservation of ${who}: cannot be read: ${errorMessage(err)}`,
    );
  }
  let usable = current;
  if (current?.ownerUid && owner && current.ownerUid !== owner.uid) {
    // The VM was deleted and made again under its name; the garbage collector has not caught up.
    o.log.info('address reservation of a deleted VM of the same name is replaced', {
      vm: vmKey(vm),
      network,
      ownerUid: current.ownerUid,
      now: owner.uid,
    });
    usable = undefined;
  }
  const refused = usable && (outsideSubnets(usable.ips, o.subnets) ?? reservationRefusal(o.holders, usable));
  if (refused) {
    o.log.warn('address reservation cannot be given back; the VM gets new addresses', {
      vm: vmKey(vm),
      network,
      reason: refused,
    });
    usable = undefined;
  }
  const ips = o.requested?.length ? o.requested : usable?.ips;
  if (usable && ips && sameAddresses(ips.map(plain), usable.ips)) return { ips };
  const replace = current !== undefined;
  const reserve = async (assigned: string[]): Promise<void> => {
    const want = assigned.map(plain);
    let held: AddressReservation | undefined;
    try {
      held = await lookup.reserveAddresses!({ network, vm, ips: want }, { owner, replace });
    } catch (err) {
      throw new CniError(
        CniErrorCode.TryAgainLater,
        `address reservation of ${who}: cannot be written: ${errorMessage(err)}`,
      );
    }
    if (!held) return; // the lookup service keeps no reservations; it said so when it started
    if (!sameAddresses(held.ips, want))
      throw new CniError(
        CniErrorCode.TryAgainLater,
        `address reservation of ${who}: another node reserved ${held.ips.join(', ')} for it at the same moment; this ADD got ${want.join(', ')} and is refused, its retry gets the reserved addresses`,
      );
  };
  return ips ? { ips, reserve } : { reserve };
}
