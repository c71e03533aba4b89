// KubeVirt VM identity from a virt-launcher pod's labels and annotations. The identity is the
// namespace plus the VMI name: it stays the same across live migration, while the pod, its node and
// castnet's endpoint ID change.

import type { PodMeta } from '../lookup/port.js';

export type { PodMeta };

export interface VmIdentity {
  namespace: string;
  name: string;
  /** The pod is the target of a live migration (label kubevirt.io/migrationJobUID). */
  migrationTarget: boolean;
}

export const LAUNCHER_LABEL = 'kubevirt.io';
export const LAUNCHER_VALUE = 'virt-launcher';
export const VMI_ID_LABEL = 'vmi.kubevirt.io/id';
export const VM_NAME_LABEL = 'vm.kubevirt.io/name';
export const DOMAIN_ANNOTATION = 'kubevirt.io/domain';
export const MIGRATION_JOB_LABEL = 'kubevirt.io/migrationJobUID';
export const CREATED_BY_LABEL = 'kubevirt.io/created-by';

/** The VMI a virt-launcher pod runs, or undefined for any other pod. */
export function vmIdentity(pod: PodMeta): VmIdentity | undefined {
  if (pod.labels[LAUNCHER_LABEL] !== LAUNCHER_VALUE) return undefined;
  // vmi.kubevirt.io/id and the domain annotation name the VMI itself; vm.kubevirt.io/name names the
  // owning VirtualMachine, which has the same name as its VMI.
  const name = pod.labels[VMI_ID_LABEL] ?? pod.annotations[DOMAIN_ANNOTATION] ?? pod.labels[VM_NAME_LABEL];
  if (!name) return undefined;
  return { namespace: pod.namespace, name, migrationTarget: MIGRATION_JOB_LABEL in pod.labels };
}

/** The labels and annotations KubeVirt puts on a virt-launcher pod (used by the lab to emulate one). */
export function launcherPodMeta(
  namespace: string,
  vmi: string,
  podName: string,
  opts: { vmiUid: string; migrationJobUid?: string },
): PodMeta {
  const labels: Record<string, string> = {
    [LAUNCHER_LABEL]: LAUNCHER_VALUE,
    [CREATED_BY_LABEL]: opts.vmiUid,
    [VMI_ID_LABEL]: vmi,
    [VM_NAME_LABEL]: vmi,
  };
  if (opts.migrationJobUid) labels[MIGRATION_JOB_LABEL] = opts.migrationJobUid;
  return { namespace, name: podName, labels, annotations: { [DOMAIN_ANNOTATION]: vmi } };
}
