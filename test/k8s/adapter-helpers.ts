// Shared by the agent adapter's tests: a KubernetesLookup on a test cluster and waiting on its directory.
import { loadKubeConfig } from '../../pkg/k8s/config.js';
import { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import type { Directory, EndpointRecord, MembershipRecord } from '../../pkg/lookup/port.js';
import type { Cluster } from '../harness/k8s.js';

/** A started adapter as the admin, or as whoever `kubeconfig` authenticates. */
export function adapter(
  cluster: Cluster,
  selector?: string,
  kubeconfig = cluster.kubeconfigPath,
): KubernetesLookup {
  const lookup = new KubernetesLookup({ kubeConfig: loadKubeConfig(kubeconfig), selector });
  void lookup.start();
  return lookup;
}

/** Resolves with the first directory `lookup` delivers that satisfies `pred`. */
export function until(
  lookup: KubernetesLookup,
  pred: (d: Directory) => boolean,
  timeoutMs = 20_000,
): Promise<Directory> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`directory did not reach the expected state in ${timeoutMs} ms`));
    }, timeoutMs);
    const off: () => void = lookup.subscribe((d) => {
      if (done || !pred(d)) return;
      done = true;
      clearTimeout(timer);
      queueMicrotask(() => off());
      resolve(d);
    });
  });
}

export const endpoint = (node: string, endpointId: number, ip: string): EndpointRecord => ({
  network: 'blue',
  node,
  endpointId,
  mac: `02:00:00:00:00:${endpointId.toString(16).padStart(2, '0')}`,
  ips: [ip],
  pod: { namespace: 'default', name: `pod-${endpointId}` },
});

export const membership = (node: string, endpointId: number, group: string): MembershipRecord => ({
  network: 'blue',
  group,
  node,
  endpointId,
  filter: { mode: 'exclude', sources: [] },
});

export const membersOf = (d: Directory, group: string): string[] =>
  d.memberships
    .filter((m) => m.group === group)
    .map((m) => `${m.node}/${m.endpointId}`)
    .sort();
