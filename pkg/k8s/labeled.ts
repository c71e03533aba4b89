// Pods and KubeVirt VMIs as label selectors need them, for the controller's and the agents' caches.
import type { LabeledObject } from './types.js';

/** The parts of a Pod or VMI these helpers read. */
export interface LabeledResource {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
  };
  spec?: unknown;
  status?: unknown;
}

/** Keeps identity and labels only (in place): at 100k pods, spec and status are gigabytes. */
export function trimToLabels(o: LabeledResource): void {
  const m = o.metadata ?? {};
  o.metadata = {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    labels: m.labels,
    resourceVersion: m.resourceVersion,
  };
  delete o.spec;
  delete o.status;
}

export function toLabeledObject(o: LabeledResource): LabeledObject {
  return {
    namespace: o.metadata?.namespace ?? '',
    name: o.metadata?.name ?? '',
    uid: o.metadata?.uid,
    labels: o.metadata?.labels ?? {},
  };
}
