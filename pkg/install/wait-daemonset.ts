// The uninstall hook's wait: Helm waits for a hook Job, not for a hook DaemonSet, so a Job waits
// until the node-cleanup DaemonSet has run its cleanup (its init container) on every node.
import type { AppsV1Api } from '@kubernetes/client-node';
import { sleep } from '../base/async.js';
import { errorMessage } from '../base/errors.js';
import { apiCall } from '../k8s/api-error.js';

/** What daemonSetDone reads of a DaemonSet. */
interface DaemonSetStatus {
  metadata?: { generation?: number };
  status?: {
    observedGeneration?: number;
    desiredNumberScheduled?: number;
    numberReady?: number;
    updatedNumberScheduled?: number;
  };
}

/** Whether every scheduled pod of the DaemonSet's current generation is ready. Pure. */
export function daemonSetDone(ds: DaemonSetStatus): boolean {
  const s = ds.status;
  if (!s || s.observedGeneration !== ds.metadata?.generation) return false;
  const desired = s.desiredNumberScheduled ?? 0;
  return (s.numberReady ?? 0) >= desired && (s.updatedNumberScheduled ?? 0) >= desired;
}

/** Polls until daemonSetDone; rejects after `timeoutMs` with what is still missing. */
export async function waitForDaemonSet(
  apps: AppsV1Api,
  namespace: string,
  name: string,
  timeoutMs: number,
  pollMs = 2000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // The hook's Role may not be in force yet when this pod starts (the apiserver's RBAC cache), and
    // the apiserver may be briefly unavailable: only the deadline ends the wait.
    let missing: string;
    try {
      const ds = await apiCall(`read DaemonSet ${namespace}/${name}`, () =>
        apps.readNamespacedDaemonSet({ namespace, name }),
      );
      if (daemonSetDone(ds)) return;
      missing = `${ds.status?.numberReady ?? 0} of ${ds.status?.desiredNumberScheduled ?? '?'} pods ready`;
    } catch (err) {
      missing = errorMessage(err);
    }
    if (Date.now() >= deadline) {
      throw new Error(`daemonset ${namespace}/${name}: ${missing} after ${timeoutMs / 1000} s`);
    }
    await sleep(pollMs);
  }
}
