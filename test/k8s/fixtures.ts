// Shared by the apiserver-backed castnet tests: installing the CRDs and polling for a condition.
import path from 'node:path';
import type { Cluster } from '../harness/k8s.js';
import { waitFor } from '../../pkg/base/async.js';

export const crdDir = path.resolve(import.meta.dirname, '../../charts/castnet/crds');

/** Applies castnet's CRDs (idempotent, safe from parallel test files) and waits until they are served. */
export async function installCrds(c: Cluster): Promise<void> {
  await c.kubectl(['apply', '--server-side', '--force-conflicts', '-f', crdDir]);
  await c.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/virtualnetworks.castnet.io',
    'crd/multicastgroups.castnet.io',
    'crd/membershipreports.castnet.io',
  ]);
}

/**
 * A stand-in for KubeVirt's VirtualMachineInstance CRD (KubeVirt itself cannot run here): any
 * fields, status included in the object (no status subresource).
 */
export async function installVmiCrd(c: Cluster): Promise<void> {
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'virtualmachineinstances.kubevirt.io' },
    spec: {
      group: 'kubevirt.io',
      scope: 'Namespaced',
      names: {
        kind: 'VirtualMachineInstance',
        plural: 'virtualmachineinstances',
        singular: 'virtualmachineinstance',
      },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  };
  await c.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: JSON.stringify(crd) });
  await c.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/virtualmachineinstances.kubevirt.io',
  ]);
}

/** Polls `probe` until it returns a value (not undefined) or the timeout passes; the last error says why. */
export function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  return waitFor(probe, { what, timeoutMs, intervalMs: 200 });
}

/** A node as an agent registers it: documentation address 192.0.2.<last>, pool index <last>. */
export const nodeRegistration = (name: string, last: number) => ({
  name,
  address: `192.0.2.${last}`,
  port: 4790,
  poolIndex: last,
});
