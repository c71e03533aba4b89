import { CniError } from '../cni/types.js';
import { launcherPodMeta } from '../kubevirt/identity.js';
import type { Directory, EndpointRecord, VmiPods } from '../lookup/port.js';
import { checkUnique, confirmVm } from './identity.js';

const pod = {
  ...launcherPodMeta('prod', 'db-0', 'virt-launcher-db-0-aaaaa', { vmiUid: 'v' }),
  uid: 'pod-uid-1',
};
const status = (o: Partial<VmiPods> = {}): VmiPods => ({
  namespace: 'prod',
  name: 'db-0',
  activePodUids: [],
  ...o,
});

describe('confirmVm', () => {
  it('gives the VM identity to a pod the VMI status names, as an active pod or the migration target', async () => {
    const vm = { namespace: 'prod', name: 'db-0' };
    await expect(confirmVm(pod, async () => status({ activePodUids: ['pod-uid-1'] }))).resolves.toEqual(vm);
    await expect(
      confirmVm(pod, async () => status({ migrationTargetPod: 'virt-launcher-db-0-aaaaa' })),
    ).resolves.toEqual(vm);
  });

  it('asks again until the status names the pod (KubeVirt may lag the ADD)', async () => {
    let calls = 0;
    const vm = await confirmVm(
      pod,
      async () => status({ activePodUids: ++calls >= 2 ? ['pod-uid-1'] : [] }),
      {
        timeoutMs: 5_000,
      },
    );
    expect(vm).toEqual({ namespace: 'prod', name: 'db-0' });
    expect(calls).toBe(2);
  });

  it('refuses labels alone, a missing VMI, and a lookup service without VMIs, with code 11', async () => {
    const refused = async (p: Promise<unknown>, msg: RegExp) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CniError);
      expect((err as CniError).code).toBe(11);
      expect((err as CniError).message).toMatch(msg);
    };
    await refused(
      confirmVm(pod, async () => status({ activePodUids: ['other'] }), { timeoutMs: 0 }),
      /K8S_POD_NAME: pod prod\/virt-launcher-db-0-aaaaa .* names it neither an active pod nor the migration target/,
    );
    await refused(
      confirmVm(pod, async () => undefined, { timeoutMs: 0 }),
      /VMI prod\/db-0, which does not exist/,
    );
    await refused(confirmVm(pod, undefined), /knows no VMIs/);
  });

  it('leaves a pod without virt-launcher labels alone', async () => {
    await expect(
      confirmVm({ namespace: 'a', name: 'p', labels: {}, annotations: {} }, undefined),
    ).resolves.toBeUndefined();
  });
});

describe('checkUnique', () => {
  const holder: EndpointRecord = {
    network: 'blue',
    node: 'n1',
    endpointId: 7,
    mac: '02:00:00:00:00:07',
    ips: ['10.0.0.7', 'fd00::7'],
    pod: { namespace: 'a', name: 'old' },
    vm: { namespace: 'prod', name: 'db-0' },
  };
  const d: Directory = { networks: [], nodes: [], endpoints: [holder], groups: [], memberships: [] };
  const attempt = (o: Partial<Parameters<typeof checkUnique>[1]>) => () =>
    checkUnique(d, { node: 'n0', network: 'blue', ...o });

  it('refuses another node’s MAC or IP, naming the field and the holder', () => {
    expect(attempt({ mac: { field: 'runtimeConfig.mac', value: '02:00:00:00:00:07' } })).toThrow(
      'runtimeConfig.mac: 02:00:00:00:00:07 is already used by endpoint 7 on node n1 (pod a/old)',
    );
    expect(attempt({ ips: ['10.0.0.7/24'] })).toThrow(
      'runtimeConfig.ips: 10.0.0.7 is already used by endpoint 7',
    );
    expect(attempt({ ips: ['fd00:0::7'] })).toThrow('runtimeConfig.ips: fd00::7'); // compared canonically
  });

  it('allows free addresses, other networks, its own node, and the same VM (live migration)', () => {
    expect(attempt({ ips: ['10.0.0.8'], mac: { field: 'm', value: '02:00:00:00:00:08' } })).not.toThrow();
    expect(attempt({ network: 'red', ips: ['10.0.0.7'] })).not.toThrow();
    expect(attempt({ node: 'n1', ips: ['10.0.0.7'] })).not.toThrow();
    expect(attempt({ ips: ['10.0.0.7'], vm: { namespace: 'prod', name: 'db-0' } })).not.toThrow();
    expect(attempt({ ips: ['10.0.0.7'], vm: { namespace: 'prod', name: 'db-1' } })).toThrow();
  });
});
