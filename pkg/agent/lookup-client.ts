// Chooses the lookup service adapter from the agent's --lookup flag.
import type { LookupService } from '../lookup/port.js';
import { EmbeddedLookupClient } from '../lookup/embedded/client.js';

export interface LookupOptions {
  /** For `kubernetes`: kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster). */
  kubeconfig?: string;
  /** For `kubernetes`: label selector of the VirtualNetworks and MulticastGroups to use. */
  selector?: string;
  /** For `kubernetes`: this node, whose pods the groups' label selectors are evaluated against. */
  node?: string;
  onError?: (err: unknown, what: string) => void;
}

export async function connectLookup(spec: string, opts: LookupOptions = {}): Promise<LookupService> {
  if (spec.startsWith('unix:')) return new EmbeddedLookupClient(spec.slice('unix:'.length));
  if (spec === 'kubernetes') {
    // Loaded only here: the Kubernetes client costs ~80 MB of resident memory the embedded lookup
    // service does not need.
    const [{ loadKubeConfig }, { KubernetesLookup }] = await Promise.all([
      import('../k8s/config.js'),
      import('../lookup/kubernetes/lookup.js'),
    ]);
    const lookup = new KubernetesLookup({
      kubeConfig: loadKubeConfig(opts.kubeconfig),
      selector: opts.selector,
      node: opts.node,
      onError: opts.onError,
    });
    // The agent does not wait for the apiserver: it wires pods without it.
    void lookup.start();
    return lookup;
  }
  throw new Error(
    `--lookup: ${JSON.stringify(spec)} must be unix:PATH (the embedded lookup service) or kubernetes`,
  );
}
