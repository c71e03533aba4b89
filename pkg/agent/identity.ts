// Who a new endpoint may be, decided at CNI ADD from the directory and KubeVirt's VMI status:
// - MAC and IP addresses are unique across the cluster: an ADD asking for one that another node's
//   endpoint holds is refused, and the older endpoint keeps it;
// - the one exception is a KubeVirt VM moving between pods (live migration), and only a pod that
//   the VMI's status names (status.activePods, status.migrationState.targetPod) is that VM. Labels
//   are set by whoever creates the pod, so they only say which VMI to ask.
import { sleep } from '../base/async.js';
import { CniError, CniErrorCode } from '../cni/types.js';
import { vmIdentity } from '../kubevirt/identity.js';
import { canonicalAddress } from '../netaddr/address.js';
import type { Directory, EndpointRecord, PodMeta, VmiPods, VmRef } from '../lookup/port.js';
import { heldByOther, vmKey, type AddressHolders } from '../ipam/reservations.js';

/** How long an ADD waits for KubeVirt to name its pod in the VMI's status (it may lag the pod). */
export const VMI_NAMING_TIMEOUT_MS = 10_000;
const VMI_POLL_MS = 250;

/** Whether VMI status `vmi` names `pod` as one of its pods. */
export function vmiNames(vmi: VmiPods, pod: PodMeta): boolean {
  return (
    (pod.uid !== undefined && vmi.activePodUids.includes(pod.uid)) || vmi.migrationTargetPod === pod.name
  );
}

/**
 * The VM whose identity pod `meta` may take: none for a pod without virt-launcher labels; the VMI
 * the labels name once its status names the pod (asked again until `timeoutMs`); else a CniError.
 */
export async function confirmVm(
  meta: PodMeta,
  vmiPods: ((namespace: string, name: string) => Promise<VmiPods | undefined>) | undefined,
  opts: { timeoutMs?: number; now?: () => number } = {},
): Promise<VmRef | undefined> {
  return (await confirmVmi(meta, vmiPods, opts))?.vm;
}

/** confirmVm, with the VMI status that named the pod (its owner: what the VM's reservations go with). */
export async function confirmVmi(
  meta: PodMeta,
  vmiPods: ((namespace: string, name: string) => Promise<VmiPods | undefined>) | undefined,
  opts: { timeoutMs?: number; now?: () => number } = {},
): Promise<{ vm: VmRef; status: VmiPods } | undefined> {
  const claimed = vmIdentity(meta);
  if (!claimed) return undefined;
  const now = opts.now ?? Date.now;
  const deadline = now() + (opts.timeoutMs ?? VMI_NAMING_TIMEOUT_MS);
  const vm = { namespace: claimed.namespace, name: claimed.name };
  const who = `pod ${meta.namespace}/${meta.name}`;
  if (!vmiPods)
    throw new CniError(
      CniErrorCode.TryAgainLater,
      `K8S_POD_NAME: ${who} carries the virt-launcher labels of VMI ${vm.namespace}/${vm.name}, but the lookup service knows no VMIs to confirm it`,
    );
  for (;;) {
    const status = await vmiPods(vm.namespace, vm.name);
    if (status && vmiNames(status, meta)) return { vm, status };
    if (now() >= deadline)
      throw new CniError(
        CniErrorCode.TryAgainLater,
        status
          ? `K8S_POD_NAME: ${who} carries the virt-launcher labels of VMI ${vm.namespace}/${vm.name}, but the VMI's status names it neither an active pod nor the migration target`
          : `K8S_POD_NAME: ${who} carries the virt-launcher labels of VMI ${vm.namespace}/${vm.name}, which does not exist`,
      );
    await sleep(VMI_POLL_MS);
  }
}

const same = (a: VmRef | undefined, b: VmRef | undefined): boolean =>
  a !== undefined && b !== undefined && a.namespace === b.namespace && a.name === b.name;

const describeHolder = (e: EndpointRecord): string =>
  `endpoint ${e.endpointId} on node ${e.node}` + (e.pod ? ` (pod ${e.pod.namespace}/${e.pod.name})` : '');

/**
 * Refuses an ADD on `node` whose requested MAC (`mac.value`, from field `mac.field`) or IPs
 * (runtimeConfig.ips) another node's endpoint on the same network holds, unless that endpoint is
 * the same VM (`vm`, confirmed) that this ADD continues; and requested IPs another VM's address
 * reservation holds (`reserved`), even while that VM is not running. Addresses castnet IPAM
 * allocates never collide (it skips what other nodes and reservations hold), so only requested
 * ones are checked here.
 */
export function checkUnique(
  d: Directory | undefined,
  req: {
    node: string;
    network: string;
    mac?: { field: string; value: string };
    ips?: string[];
    vm?: VmRef;
  },
  reserved?: AddressHolders,
): void {
  for (const ip of req.ips ?? []) {
    const holder = reserved && heldByOther(reserved, req.network, ip.split('/')[0]!, req.vm);
    if (holder)
      throw new CniError(
        CniErrorCode.AddressInUse,
        `runtimeConfig.ips: ${ip} is reserved for VM ${vmKey(holder.vm)} on network ${JSON.stringify(req.network)} until that VM is deleted`,
      );
  }
  if (!d) return;
  const mac = req.mac?.value.toLowerCase();
  const ips = new Set((req.ips ?? []).map((ip) => canonicalAddress(ip.split('/')[0]!)));
  for (const e of d.endpoints) {
    if (e.node === req.node || e.network !== req.network || same(e.vm, req.vm)) continue;
    if (mac !== undefined && e.mac.toLowerCase() === mac)
      throw new CniError(
        CniErrorCode.InvalidMac,
        `${req.mac!.field}: ${req.mac!.value} is already used by ${describeHolder(e)} on network ${JSON.stringify(req.network)}; MAC addresses are unique across the cluster`,
      );
    const ip = e.ips.find((a) => ips.has(canonicalAddress(a)));
    if (ip !== undefined)
      throw new CniError(
        CniErrorCode.AddressInUse,
        `runtimeConfig.ips: ${ip} is already used by ${describeHolder(e)} on network ${JSON.stringify(req.network)}; IP addresses are unique across the cluster`,
      );
  }
}
