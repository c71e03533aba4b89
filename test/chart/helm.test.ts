// The Helm chart with a real helm and a real kube-apiserver: lint, render, bad values refused by the
// schema, the rendered manifests applied server-side, least-privilege RBAC, the admission policy that
// lets an agent write only its own node's MembershipReport, and a real helm install.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { apiCall, KubernetesApiError } from '../../pkg/k8s/api-error.js';
import { crd } from '../../pkg/k8s/resources.js';
import { run } from '../../pkg/sys/exec.js';
import {
  clusterKubeConfig,
  createNamespace,
  ensureCluster,
  nodeBoundToken,
  upstreamBin,
  type Cluster,
} from '../harness/k8s.js';
import { installCrds } from '../k8s/fixtures.js';

const chart = path.resolve(import.meta.dirname, '../../charts/castnet');
const helm = path.join(upstreamBin, 'helm');
const tag = randomBytes(3).toString('hex');
const release = `cn${tag}`;
let cluster: Cluster;
let ns: string;

async function template(args: string[] = []): Promise<string> {
  const { stdout } = await run(helm, [
    'template',
    release,
    chart,
    '--namespace',
    ns,
    '--kube-version',
    '1.37.0',
    ...args,
  ]);
  return stdout;
}

async function templateError(args: string[]): Promise<string> {
  return template(args).then(
    () => {
      throw new Error(`helm accepted ${args.join(' ')}`);
    },
    (e: Error) => e.message,
  );
}

beforeAll(async () => {
  cluster = await ensureCluster();
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'cnhelm');
}, 240_000);

afterAll(async () => {
  if (!cluster) return;
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  await cluster
    .kubectl([
      'delete',
      'clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding,node',
      '-l',
      `castnet-test=${tag}`,
    ])
    .catch(() => undefined);
  for (const kind of ['clusterrole', 'clusterrolebinding']) {
    for (const n of [`${release}-agent`, `${release}-controller`]) {
      await cluster.kubectl(['delete', kind, n, '--ignore-not-found']).catch(() => undefined);
    }
  }
  for (const kind of ['validatingadmissionpolicy', 'validatingadmissionpolicybinding']) {
    await cluster
      .kubectl(['delete', kind, `${release}-agent-own-report`, '--ignore-not-found'])
      .catch(() => undefined);
  }
  await cluster
    .kubectl(['delete', 'membershipreport', `hn-${tag}`, '--ignore-not-found'])
    .catch(() => undefined);
  await cluster.kubectl(['delete', 'node', `hn-${tag}`, '--ignore-not-found']).catch(() => undefined);
});

test('deploy/ holds exactly what the chart renders (make manifests)', async () => {
  await expect(
    run(path.resolve(import.meta.dirname, '../../scripts/render-manifests.sh'), ['--check']),
  ).resolves.toMatchObject({ stdout: '', stderr: '' });
});

test('helm lint --strict passes', async () => {
  const { stdout } = await run(helm, ['lint', '--strict', chart, '--kube-version', '1.37.0']);
  expect(stdout).toContain('0 chart(s) failed');
});

test('renders both modes: the conflist-writing init container mounts the conf dir only in primary mode', async () => {
  const kinds = (text: string): string[] =>
    parseAllDocuments(text)
      .map((d) => d.toJS() as { kind?: string } | null)
      .filter((o): o is { kind: string } => !!o?.kind)
      .map((o) => o.kind)
      .sort();
  const secondary = await template(['--set', 'networkAttachmentDefinition.create=true']);
  expect(kinds(secondary)).toEqual([
    'ClusterRole',
    'ClusterRole',
    'ClusterRoleBinding',
    'ClusterRoleBinding',
    'DaemonSet',
    'DaemonSet', // node cleanup (pre-delete hook)
    'Deployment',
    'Job', // waits for the node cleanup
    'NetworkAttachmentDefinition',
    'PodDisruptionBudget',
    'Role',
    'Role',
    'Role', // agent: pool-index Leases
    'RoleBinding',
    'RoleBinding',
    'RoleBinding',
    'ServiceAccount',
    'ServiceAccount',
    'ServiceAccount',
    'ValidatingAdmissionPolicy',
    'ValidatingAdmissionPolicyBinding',
  ]);
  const hooks = parseAllDocuments(secondary)
    .map((d) => d.toJS() as { kind: string; metadata: { annotations?: Record<string, string> } } | null)
    .filter((o) => o?.metadata?.annotations?.['helm.sh/hook'])
    .map((o) => o!.kind);
  expect(hooks.sort()).toEqual(['DaemonSet', 'Job', 'Role', 'RoleBinding', 'ServiceAccount']);
  expect(kinds(await template(['--set', 'uninstall.cleanupNodes=false']))).not.toContain('Job');
  interface Workload {
    kind: string;
    metadata: { name: string };
    spec: {
      template: {
        spec: { initContainers: Array<{ name: string; volumeMounts: Array<{ mountPath: string }> }> };
      };
    };
  }
  const installMounts = (text: string): string[] => {
    const agent = parseAllDocuments(text)
      .map((d) => d.toJS() as Workload | null)
      .find((o) => o?.kind === 'DaemonSet' && o.metadata.name === `${release}-agent`);
    return agent!.spec.template.spec.initContainers
      .find((c) => c.name === 'install-cni')!
      .volumeMounts.map((m) => m.mountPath);
  };
  expect(installMounts(secondary)).toEqual(['/host/cni/bin']);
  const primary = await template(['--set', 'mode=primary']);
  expect(installMounts(primary)).toEqual(['/host/cni/bin', '/host/cni/net.d']);
  expect(primary).not.toContain('NetworkAttachmentDefinition');
});

interface Container {
  name: string;
  args?: string[];
  command?: string[];
  readinessProbe?: { httpGet?: { host?: string } };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
}
interface PodOwner {
  kind: string;
  metadata: { name: string };
  spec: {
    template: {
      spec: {
        securityContext?: { seccompProfile?: { type: string } };
        containers: Container[];
        initContainers?: Container[];
      };
    };
  };
}

const podOwners = (text: string): PodOwner[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as PodOwner | null)
    .filter((o): o is PodOwner => !!o?.spec?.template?.spec);

test("primary mode masquerades the pods' traffic leaving the network, unless told not to", async () => {
  const agentArgs = async (set: string[]): Promise<string[]> => {
    const ds = podOwners(await template(set)).find((o) => o.metadata.name === `${release}-agent`)!;
    return ds.spec.template.spec.containers.find((c) => c.name === 'agent')!.args ?? [];
  };
  const masq = (args: string[]) => args.filter((a) => a.includes('masquerade'));
  expect(masq(await agentArgs([]))).toEqual([]);
  expect(masq(await agentArgs(['--set', 'mode=primary']))).toEqual(['--masquerade']);
  expect(
    masq(
      await agentArgs(['--set', 'mode=primary', '--set', 'cni.nonMasqueradeCIDRs={10.0.0.0/8,192.0.2.1}']),
    ),
  ).toEqual(['--masquerade', '--non-masquerade-cidr=10.0.0.0/8', '--non-masquerade-cidr=192.0.2.1']);
  expect(masq(await agentArgs(['--set', 'mode=primary', '--set', 'cni.masquerade=false']))).toEqual([]);
});

test('every pod runs with the runtime’s seccomp profile, a read-only root and only the capabilities castnet uses', async () => {
  const owners = podOwners(await template(['--set', 'mode=primary']));
  expect(owners.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
    `DaemonSet/${release}-agent`,
    `DaemonSet/${release}-node-cleanup`,
    `Deployment/${release}-controller`,
    `Job/${release}-node-cleanup-wait`,
  ]);
  // What the code does: netlink (NET_ADMIN), AF_PACKET and raw sockets (NET_RAW), setns into pod
  // namespaces (SYS_ADMIN), root-owned host directories (DAC_OVERRIDE). No bpf(), XDP, perf, mlock,
  // chown or chmod of others' files.
  const used = new Set(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'DAC_OVERRIDE']);
  for (const o of owners) {
    expect([o.metadata.name, o.spec.template.spec.securityContext?.seccompProfile?.type]).toEqual([
      o.metadata.name,
      'RuntimeDefault',
    ]);
    for (const c of [...(o.spec.template.spec.initContainers ?? []), ...o.spec.template.spec.containers]) {
      const sc = c.securityContext ?? {};
      const added = sc.capabilities?.add ?? [];
      const where = `${o.metadata.name}/${c.name}`;
      expect([where, sc.capabilities?.drop]).toEqual([where, ['ALL']]);
      expect([where, added.filter((a) => !used.has(a))]).toEqual([where, []]);
      expect([where, sc.readOnlyRootFilesystem]).toEqual([where, true]);
      expect([where, sc.allowPrivilegeEscalation]).toEqual([where, false]);
    }
  }
});

test('the agent’s metrics are served on the node’s loopback unless asked otherwise', async () => {
  const sidecar = async (args: string[] = []) =>
    podOwners(await template(args))
      .find((o) => o.metadata.name === `${release}-agent`)!
      .spec.template.spec.containers.find((c) => c.name === 'metrics')!;
  const local = await sidecar();
  expect(local.command).toContain('--listen=127.0.0.1:9403');
  expect(local.readinessProbe?.httpGet?.host).toBe('127.0.0.1');
  const wide = await sidecar(['--set', 'agent.metrics.address=::']);
  expect(wide.command).toContain('--listen=[::]:9403');
  expect(wide.readinessProbe?.httpGet?.host).toBeUndefined();
});

test.each([
  [['--set', 'mode=tertiary'], /\/mode.*must be one of 'primary', 'secondary'/],
  [['--set', 'controller.replicas=0'], /\/controller\/replicas.*minimum: got 0, want 1/],
  [['--set', 'agent.underlayPort=70000'], /\/agent\/underlayPort.*maximum: got 70,000, want 65,535/],
  [['--set', 'cni.binDir=opt/cni/bin'], /\/cni\/binDir.*does not match pattern/],
  [['--set', 'agent.typo=1'], /\/agent.*additional properties 'typo' not allowed/],
  [['--set', 'image.pullPolicy=Sometimes'], /\/image\/pullPolicy.*must be one of/],
  [['--set', 'agent.underlayMtu=600'], /\/agent\/underlayMtu.*minimum: got 600, want 1,280/],
  [['--set', 'cni.conflistName=castnet.conf'], /\/cni\/conflistName.*does not match pattern/],
  [['--set', 'agent.wireKeySecret=Wire_Key'], /\/agent\/wireKeySecret.*does not match pattern/],
  [['--set', 'uninstall.timeoutSeconds=5'], /\/uninstall\/timeoutSeconds.*minimum: got 5, want 30/],
  [['--set', 'controller.nodeGraceSeconds=-1'], /\/controller\/nodeGraceSeconds.*minimum: got -1, want 0/],
  [['--set', 'extra=1'], /additional properties 'extra' not allowed/],
  [['--set', 'agent.metrics.address=node.example'], /\/agent\/metrics\/address.*does not match pattern/],
  [['--set', 'cni.nonMasqueradeCIDRs={fd00::/8}'], /\/cni\/nonMasqueradeCIDRs\/0.*does not match pattern/],
])('values.schema.json rejects %j', async (args, expected) => {
  expect(await templateError(args)).toMatch(expected);
});

test('the rendered chart applies server-side, with least-privilege RBAC', async () => {
  const manifests = await template();
  await cluster.kubectl(['apply', '--server-side', '--field-manager=helm-test', '-f', '-'], {
    input: manifests,
  });
  const agent = `system:serviceaccount:${ns}:${release}-agent`;
  const controller = `system:serviceaccount:${ns}:${release}-controller`;
  // can-i answers "no" with exit status 1 and nothing on stderr; anything on stderr is a real error.
  const can = async (as: string, ...args: string[]): Promise<'yes' | 'no'> =>
    cluster.kubectl(['auth', 'can-i', '--quiet', ...args], { as }).then(
      () => 'yes' as const,
      (e: Error) => {
        if (/\berror\b/i.test(e.message)) throw e;
        return 'no' as const;
      },
    );
  expect(await can(agent, 'create', 'membershipreports.castnet.io')).toBe('yes');
  // Its report's status (what the spec left out) and Warning Events about the pods concerned.
  expect(await can(agent, 'patch', 'membershipreports.castnet.io', '--subresource=status')).toBe('yes');
  expect(await can(agent, 'create', 'events', '-n', 'default')).toBe('yes');
  expect(await can(agent, 'delete', 'events', '-n', 'default')).toBe('no');
  expect(await can(agent, 'list', 'multicastgroups.castnet.io')).toBe('yes');
  expect(await can(agent, 'patch', 'multicastgroups.castnet.io', '--subresource=status')).toBe('no');
  expect(await can(agent, 'delete', 'membershipreports.castnet.io')).toBe('no');
  expect(await can(agent, 'create', 'virtualnetworks.castnet.io')).toBe('no');
  expect(await can(agent, 'delete', 'multicastgroups.castnet.io')).toBe('no');
  expect(await can(agent, 'update', 'multicastgroups.castnet.io')).toBe('no');
  expect(await can(agent, 'get', 'pods', '-n', 'default')).toBe('yes');
  // Pod labels for groups' selectors: the agent reads (its node's) pods, and never changes one.
  expect(await can(agent, 'watch', 'pods', '-A')).toBe('yes');
  expect(await can(agent, 'patch', 'pods', '-A')).toBe('no');
  expect(await can(agent, 'delete', 'pods', '-A')).toBe('no');
  expect(await can(agent, 'list', 'secrets', '-A')).toBe('no');
  expect(await can(agent, 'update', 'nodes')).toBe('no');
  // Pool-index Leases in the release namespace: claim (create) and find its own (list), nothing more.
  expect(await can(agent, 'create', 'leases.coordination.k8s.io', '-n', ns)).toBe('yes');
  expect(await can(agent, 'update', 'leases.coordination.k8s.io', '-n', ns)).toBe('no');
  expect(await can(agent, 'delete', 'leases.coordination.k8s.io', '-n', ns)).toBe('no');
  expect(await can(agent, 'create', 'leases.coordination.k8s.io', '-n', 'kube-system')).toBe('no');
  // The uninstall hook's Job reads its one DaemonSet.
  const cleanup = `system:serviceaccount:${ns}:${release}-node-cleanup`;
  expect(await can(cleanup, 'get', `daemonsets.apps/${release}-node-cleanup`, '-n', ns)).toBe('yes');
  expect(await can(cleanup, 'get', `daemonsets.apps/${release}-agent`, '-n', ns)).toBe('no');
  expect(await can(controller, 'patch', 'multicastgroups.castnet.io', '--subresource=status')).toBe('yes');
  expect(await can(controller, 'update', 'multicastgroups.castnet.io')).toBe('no');
  expect(await can(controller, 'create', 'membershipreports.castnet.io')).toBe('no');
  expect(await can(controller, 'delete', 'membershipreports.castnet.io')).toBe('yes');
  expect(await can(controller, 'update', 'leases.coordination.k8s.io/castnet-controller', '-n', ns)).toBe(
    'yes',
  );
  expect(await can(controller, 'update', 'leases.coordination.k8s.io/other', '-n', ns)).toBe('no');
});

test('an agent may write its own node’s report and no other (admission policy on the bound token)', async () => {
  const nodeName = `hn-${tag}`;
  const token = await nodeBoundToken(cluster, {
    namespace: ns,
    serviceAccount: `${release}-agent`,
    nodeName,
    podName: 'agent-pod',
    nodeLabels: { 'castnet-test': tag },
  });
  const asAgent = clusterKubeConfig(cluster, token).makeApiClient(CustomObjectsApi);
  const create = (node: string) =>
    apiCall(`create MembershipReport ${node}`, () =>
      asAgent.createClusterCustomObject({ ...crd('membershipReport'), body: reportOf(node) }),
    );
  const reportOf = (node: string) => ({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MembershipReport',
    metadata: { name: node },
    spec: { node, underlay: { address: '192.0.2.77', port: 4790 } },
  });
  await create(nodeName);
  const err = await create(`other-${tag}`).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KubernetesApiError);
  expect((err as KubernetesApiError).status.code).toBe(403);
  expect((err as KubernetesApiError).message).toContain(
    `may write only its own node's MembershipReport, not "other-${tag}"`,
  );
});

test('helm install applies the chart to a real apiserver; bad values fail before anything is applied', async () => {
  const installed = `${release}i`;
  const helmOn = (...args: string[]) =>
    run(helm, [...args, '--namespace', ns, '--kubeconfig', cluster.kubeconfigPath], { timeoutMs: 120_000 });
  const refused = await helmOn('install', installed, chart, '--set', 'agent.underlayPort=0').then(
    () => 'accepted',
    (e: Error) => e.message,
  );
  expect(refused).toMatch(/\/agent\/underlayPort.*minimum: got 0, want 1/);
  expect(await cluster.kubectl(['get', 'clusterrole', `${installed}-agent`, '--ignore-not-found'])).toBe('');

  try {
    await helmOn('install', installed, chart, '--set', 'mode=primary');
    const ds = JSON.parse(
      await cluster.kubectl(['-n', ns, 'get', 'daemonset', `${installed}-agent`, '-o', 'json']),
    ) as {
      spec: {
        template: {
          spec: { hostNetwork: boolean; initContainers: Array<{ name: string; command: string[] }> };
        };
      };
    };
    expect(ds.spec.template.spec.hostNetwork).toBe(true);
    expect(ds.spec.template.spec.initContainers.map((c) => c.name)).toEqual([
      'claim-pool-index',
      'install-cni',
    ]);
    expect(ds.spec.template.spec.initContainers[1].command).toContain('--mode=primary');
    // Hooks run only on uninstall.
    expect(
      await cluster.kubectl([
        '-n',
        ns,
        'get',
        'daemonset',
        `${installed}-node-cleanup`,
        '--ignore-not-found',
      ]),
    ).toBe('');
  } finally {
    // No kubelet runs the cleanup pods here, so the pre-delete hook would wait for its timeout.
    await helmOn('uninstall', installed, '--no-hooks').catch(() => undefined);
  }
  expect(await cluster.kubectl(['get', 'clusterrole', `${installed}-agent`, '--ignore-not-found'])).toBe('');
}, 180_000);
