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
  type VMAddress,
} from './types.js';
import { createHash } from 'node:crypto';
import type { LabeledResource } from './labeled.js';
import type { ListPage } from './watch-cache.js';

export type CastnetKind = keyof typeof KINDS;

/** The object type of each castnet kind. */
export interface CastnetObjects {
  virtualNetwork: VirtualNetwork;
  multicastGroup: MulticastGroup;
  membershipReport: MembershipReport;
  vmAddress: VMAddress;
}

const MAX_NAME = 253;

/**
 * The name of the VMAddress of VMI `vmi` on network `network` (in the VMI's namespace): `<vmi>.<network>`,
 * or, past the 253 characters of an object name, the VMI's name cut short and a hash of both. The
 * object's spec names both, and only an object whose name is this is read as a reservation.
 */
export function vmAddressName(vmi: string, network: string): string {
  const name = `${vmi}.${network}`;
  if (name.length <= MAX_NAME) return name;
  const hash = createHash('sha256').update(`${vmi}/${network}`).digest('hex').slice(0, 16);
  return `${vmi.slice(0, MAX_NAME - hash.length - 1).replace(/[.-]+$/, '')}.${hash}`;
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

/** KubeVirt's VirtualMachines: a VMI's owner when the VM controller made it. */
export const VM = { group: 'kubevirt.io', version: 'v1', kind: 'VirtualMachine' } as const;

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
  metadata?: {
    uid?: string;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  };
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

/** Whether the apiserver serves castnet kind `kind` (its CRD is installed: `helm upgrade` adds none). */
export async function servesCastnet(custom: CustomObjectsApi, kind: CastnetKind): Promise<boolean> {
  try {
    const list = await custom.getAPIResources({ group: GROUP, version: VERSION });
    return list.resources.some((r) => r.name === KINDS[kind].plural);
  } catch (err) {
    if ((err as { code?: number }).code === 404) return false;
    throw err;
  }
}

/** Request options of a server-side apply (`application/apply-patch+yaml`; JSON is YAML). */
export const SERVER_SIDE_APPLY = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

/** Request options of a JSON merge patch. */
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
