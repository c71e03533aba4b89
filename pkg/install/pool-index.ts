// Each node's IPAM block (the agent's --pool-index) must differ from every other node's, or pods on
// two nodes get the same address. A DaemonSet has no per-node ordinal, so each node claims one: a
// Lease `castnet-pool-<n>` held by the node's name. Creating an object is atomic, so two nodes that
// race for the same index cannot both win; a node that claimed before (agent restart, upgrade) finds
// its own Lease again. Leases of deleted nodes are not reclaimed (docs/install.md).
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import { errorMessage } from '../base/errors.js';
import { apiCall, isConflict } from '../k8s/api-error.js';

export const POOL_INDEX_LABEL = 'castnet.io/pool-index';
export const MAX_POOL_INDEX = 65535;

const leaseName = (index: number) => `castnet-pool-${index}`;

/** The lowest index no lease holds. Pure. */
export function lowestFree(taken: Iterable<number>, max = MAX_POOL_INDEX): number | undefined {
  const set = new Set(taken);
  for (let i = 0; i <= max; i++) if (!set.has(i)) return i;
  return undefined;
}

/** The node's pool index: the one it holds, else the lowest free one it manages to create. */
export async function claimPoolIndex(
  leases: CoordinationV1Api,
  namespace: string,
  node: string,
): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const { items } = await apiCall(`list the pool-index Leases in namespace ${namespace}`, () =>
      leases.listNamespacedLease({ namespace, labelSelector: POOL_INDEX_LABEL }),
    );
    const indexOf = (l: V1Lease) => Number(l.metadata?.labels?.[POOL_INDEX_LABEL]);
    const mine = items.find((l) => l.spec?.holderIdentity === node);
    if (mine) return indexOf(mine);
    const index = lowestFree(items.map(indexOf).filter(Number.isInteger));
    if (index === undefined) throw new Error(`no free pool index: all ${MAX_POOL_INDEX + 1} are held`);
    try {
      await apiCall(`create Lease ${namespace}/${leaseName(index)}`, () =>
        leases.createNamespacedLease({
          namespace,
          body: {
            metadata: { name: leaseName(index), labels: { [POOL_INDEX_LABEL]: String(index) } },
            spec: { holderIdentity: node },
          },
        }),
      );
      return index;
    } catch (err) {
      if (!isConflict(err))
        throw new Error(`failed to claim pool index ${index} for node ${node}: ${errorMessage(err)}`, {
          cause: err,
        });
      // Another node took it between the list and the create: list again.
    }
  }
  throw new Error(`failed to claim a pool index for node ${node}: 100 attempts lost races`);
}
