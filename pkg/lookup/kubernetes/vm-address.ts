// VMAddress objects (docs/api.md) to and from the lookup port's AddressReservation.
import { vmAddressName } from '../../k8s/resources.js';
import { API_VERSION, KINDS, type VMAddress } from '../../k8s/types.js';
import { canonicalAddress } from '../../netaddr/address.js';
import type { AddressReservation, VmOwner } from '../port.js';

/** The object that reserves `r`, owned by `owner` (absent: by nothing; it then stays until deleted). */
export function toVmAddress(r: AddressReservation, owner?: VmOwner): VMAddress {
  return {
    apiVersion: API_VERSION,
    kind: KINDS.vmAddress.kind,
    metadata: {
      name: vmAddressName(r.vm.name, r.network),
      namespace: r.vm.namespace,
      // Not blockOwnerDeletion: that needs update on the owner's finalizers, which agents lack.
      ...(owner ? { ownerReferences: [{ ...owner, controller: true }] } : {}),
    },
    spec: { network: r.network, vmi: r.vm.name, ips: r.ips.map(canonicalAddress) },
  };
}

/** The reservation an object holds; undefined for one whose name is not its VMI's and network's. */
export function fromVmAddress(o: VMAddress): AddressReservation | undefined {
  const { metadata: m, spec } = o;
  if (!m.namespace || !spec?.vmi || !spec.network || m.name !== vmAddressName(spec.vmi, spec.network))
    return undefined;
  // client-node types creationTimestamp as a Date; the apiserver's JSON carries the RFC 3339 string.
  const ts = m.creationTimestamp as Date | string | undefined;
  const ms = ts === undefined ? NaN : new Date(ts).getTime();
  const ownerUid = m.ownerReferences?.[0]?.uid;
  return {
    network: spec.network,
    vm: { namespace: m.namespace, name: spec.vmi },
    ips: (spec.ips ?? []).map(canonicalAddress),
    ...(Number.isFinite(ms) ? { createdAt: ms } : {}),
    ...(ownerUid ? { ownerUid } : {}),
  };
}

/** Keeps what fromVmAddress reads (in place): not managedFields, labels or annotations. */
export function trimVmAddress(o: VMAddress): void {
  const { name, namespace, resourceVersion, creationTimestamp, ownerReferences } = o.metadata;
  o.metadata = {
    name,
    ...(namespace ? { namespace } : {}),
    ...(resourceVersion ? { resourceVersion } : {}),
    ...(creationTimestamp ? { creationTimestamp } : {}),
    ...(ownerReferences?.length ? { ownerReferences: ownerReferences.slice(0, 1) } : {}),
  };
}
