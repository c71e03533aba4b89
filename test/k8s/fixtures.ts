// Shared by the apiserver-backed castnet tests: installing the CRDs and polling for a condition.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import path from 'node:path';
import { stringify } from 'yaml';
import { waitFor } from '../../pkg/base/async.js';
import { crd } from '../../pkg/k8s/resources.js';
import type { MulticastGroup } from '../../pkg/k8s/types.js';
import type { Cluster } from '../harness/k8s.js';

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
    'crd/vmaddresses.castnet.io',
  ]);
}

/**
 * A stand-in for KubeVirt's VirtualMachineInstance CRD (KubeVirt itself cannot run here): any
 * fields, status included in the object (no status subresource).
 */
export async function installVmiCrd(c: Pick<Cluster, 'kubectl'>): Promise<void> {
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

/** Server-side applies `obj` with kubectl, as field manager "test". */
export const applyObject = (c: Cluster, obj: object): Promise<string> =>
  c.kubectl(['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: stringify(obj) });

export type GroupMember = NonNullable<NonNullable<MulticastGroup['status']>['members']>[number];

/**
 * Polls until the status members of MulticastGroup `ns/name`, each written by `format`, are `want`
 * in that order; resolves with them. The timeout names the list seen last.
 */
export function groupMembersAre(
  api: CustomObjectsApi,
  ns: string,
  name: string,
  want: string[],
  format: (m: GroupMember) => string,
): Promise<string[]> {
  let got: string[] | undefined;
  return waitFor(
    async () => {
      const g: MulticastGroup = await api.getNamespacedCustomObject({
        ...crd('multicastGroup'),
        namespace: ns,
        name,
      });
      got = (g.status?.members ?? []).map(format);
      return JSON.stringify(got) === JSON.stringify(want) && got;
    },
    {
      what: `members ${want.join(', ')} of ${ns}/${name}`,
      intervalMs: 200,
      observed: () => `${got?.join(', ')}`,
    },
  );
}
