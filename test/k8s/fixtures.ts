// Shared by the apiserver-backed castnet tests: installing the CRDs and polling for a condition.
import path from 'node:path';
import type { Cluster } from '../harness/k8s';

export const crdDir = path.resolve(__dirname, '../../charts/castnet/crds');

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

/** Polls `probe` until it returns a value (not undefined) or the timeout passes; the last error says why. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
