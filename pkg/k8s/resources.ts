// castnet's custom resources, and KubeVirt's VMIs, as client-node's CustomObjectsApi addresses them,
// and the request options its patches need.
import {
  PatchStrategy,
  setHeaderOptions,
  type ApisApi,
  type CustomObjectsApi,
  type KubernetesListObject,
} from '@kubernetes/client-node';
import {
  GROUP,
  KINDS,
  VERSION,
  type MembershipReport,
  type MulticastGroup,
  type VirtualNetwork,
} from './types.js';
import type { LabeledResource } from './labeled.js';
import type { ListPage } from './watch-cache.js';

export type CastnetKind = keyof typeof KINDS;

/** The object type of each castnet kind. */
export interface CastnetObjects {
  virtualNetwork: VirtualNetwork;
  multicastGroup: MulticastGroup;
  membershipReport: MembershipReport;
}

/** The group, version and plural of a castnet kind: what every CustomObjectsApi call starts with. */
export const crd = (kind: CastnetKind) => ({ group: GROUP, version: VERSION, plural: KINDS[kind].plural });

/** The REST path of a castnet kind's collection in all namespaces (what its watch cache watches). */
export const collectionPath = (kind: CastnetKind): string =>
  `/apis/${GROUP}/${VERSION}/${KINDS[kind].plural}`;

/** One page of a castnet kind's objects in all namespaces. */
export function listCastnet<K extends CastnetKind>(
  custom: CustomObjectsApi,
  kind: K,
  page: ListPage,
): Promise<KubernetesListObject<CastnetObjects[K]>> {
  return custom.listClusterCustomObject({ ...crd(kind), ...page });
}

/** KubeVirt's VirtualMachineInstances, whose labels MulticastGroups' vmi selectors select. */
export const VMI = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances' } as const;
export const VMI_PATH = `/apis/${VMI.group}/${VMI.version}/${VMI.plural}`;

export function listVmis(
  custom: CustomObjectsApi,
  page: ListPage,
): Promise<KubernetesListObject<LabeledResource>> {
  return custom.listClusterCustomObject({ ...VMI, ...page });
}

/** The parts of a VMI's status that say which pods are the VM (pkg/agent/identity.ts). */
export interface VmiStatusPods {
  status?: { activePods?: Record<string, string>; migrationState?: { targetPod?: string } };
}

/** Reads one VMI. */
export function readVmi(custom: CustomObjectsApi, namespace: string, name: string): Promise<VmiStatusPods> {
  return custom.getNamespacedCustomObject({ ...VMI, namespace, name }) as Promise<VmiStatusPods>;
}

/** Whether the apiserver serves `group`/`version` (e.g. KubeVirt's, where it is installed). */
export async function servesApi(apis: ApisApi, group: string, version: string): Promise<boolean> {
  const { groups } = await apis.getAPIVersions();
  return groups.some((g) => g.name === group && g.versions.some((v) => v.version === version));
}

/** Request options of a server-side apply (`application/apply-patch+yaml`; JSON is YAML). */
export const SERVER_SIDE_APPLY = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

/** Request options of a JSON merge patch. */
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
