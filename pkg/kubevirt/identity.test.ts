import { launcherPodMeta, vmIdentity } from './identity.js';

describe('KubeVirt VM identity', () => {
  it('reads the VMI name from a virt-launcher pod, and marks a migration target', () => {
    const src = launcherPodMeta('prod', 'db-0', 'virt-launcher-db-0-abcde', { vmiUid: 'u1' });
    expect(vmIdentity(src)).toEqual({ namespace: 'prod', name: 'db-0', migrationTarget: false });
    const dst = launcherPodMeta('prod', 'db-0', 'virt-launcher-db-0-fghij', {
      vmiUid: 'u1',
      migrationJobUid: 'm1',
    });
    expect(vmIdentity(dst)).toEqual({ namespace: 'prod', name: 'db-0', migrationTarget: true });
  });

  it('falls back to the domain annotation, and ignores pods that are not virt-launchers', () => {
    expect(
      vmIdentity({
        namespace: 'a',
        name: 'p',
        labels: { 'kubevirt.io': 'virt-launcher' },
        annotations: { 'kubevirt.io/domain': 'vm7' },
      }),
    ).toEqual({ namespace: 'a', name: 'vm7', migrationTarget: false });
    expect(
      vmIdentity({ namespace: 'a', name: 'p', labels: { app: 'web' }, annotations: {} }),
    ).toBeUndefined();
    expect(
      vmIdentity({ namespace: 'a', name: 'p', labels: { 'kubevirt.io': 'virt-launcher' }, annotations: {} }),
    ).toBeUndefined();
  });
});
