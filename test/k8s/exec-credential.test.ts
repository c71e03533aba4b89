// Kubeconfigs whose user is an exec credential plugin (exec-credential-plugin.sh, a
// client.authentication.k8s.io/v1 plugin printing a service account's token), on a private test
// apiserver (this file's controller would write the shared cluster's groups, which another test
// counts): the controller and an agent's adapter authenticate with what the plugin prints, and a
// plugin that fails stops the controller at start, and shows in the agent's errors, with the
// kubeconfig, the plugin and its reason named.
import { jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { Controller } from '../../pkg/controller/controller.js';
import { loadKubeConfig } from '../../pkg/k8s/config.js';
import type { MulticastGroup } from '../../pkg/k8s/types.js';
import { KubernetesLookup } from '../../pkg/lookup/kubernetes/lookup.js';
import { createNamespace, ensureCluster, stopCluster, type Cluster } from '../harness/k8s.js';
import { eventually, installCrds, nodeRegistration } from './fixtures.js';

jest.setTimeout(120_000);

const plugin = path.resolve(import.meta.dirname, 'exec-credential-plugin.sh');
const tag = randomBytes(3).toString('hex');
const network = `exec-${tag}`;
const node = `exec-${tag}-n1`;
const GROUP = '239.77.0.1';
const binding = 'castnet-exec-test';
let cluster: Cluster;
let ns: string;
let dir: string;
let tokenFile: string;
let runLog: string;
const controllers: Controller[] = [];
const agents: KubernetesLookup[] = [];

/** A kubeconfig for the test cluster whose only credential is the exec plugin `command`. */
async function execKubeconfig(name: string, env: Record<string, string>, command = plugin): Promise<string> {
  const admin = loadKubeConfig(cluster.kubeconfigPath).getCurrentCluster()!;
  const file = path.join(dir, `${name}.kubeconfig`);
  const exec = {
    apiVersion: 'client.authentication.k8s.io/v1',
    command,
    interactiveMode: 'Never',
    env: Object.entries(env).map(([envName, value]) => ({ name: envName, value })),
  };
  await writeFile(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'test', cluster: { server: admin.server, 'certificate-authority-data': admin.caData } },
      ],
      users: [{ name: 'exec-user', user: { exec } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'exec-user' } }],
      'current-context': 'test',
    }),
  );
  return file;
}

const controllerWith = (kubeconfig: string): Controller => {
  const c = new Controller(loadKubeConfig(kubeconfig), {
    identity: `exec-${tag}`,
    leaseNamespace: ns,
    debounceMs: 20,
    leaseDurationMs: 8000,
    renewDeadlineMs: 6000,
    retryPeriodMs: 500,
    watchVmis: false,
  });
  controllers.push(c);
  return c;
};

const agentWith = (kubeconfig: string, onError?: (err: unknown) => void): KubernetesLookup => {
  const a = new KubernetesLookup({ kubeConfig: loadKubeConfig(kubeconfig), onError, watchVmis: false });
  agents.push(a);
  void a.start();
  return a;
};

const pluginRuns = async (): Promise<number> =>
  (await readFile(runLog, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnexec${process.pid}` });
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'cnexec');
  dir = await mkdtemp(path.join(os.tmpdir(), 'castnet-exec-'));
  tokenFile = path.join(dir, 'token');
  runLog = path.join(dir, 'runs');
  await cluster.kubectl(['-n', ns, 'create', 'serviceaccount', 'exec-user']);
  await cluster.kubectl([
    ...['create', 'clusterrolebinding', binding, '--clusterrole=cluster-admin'],
    `--serviceaccount=${ns}:exec-user`,
  ]);
  await writeFile(tokenFile, await cluster.kubectl(['-n', ns, 'create', 'token', 'exec-user']));
  const apply = (obj: object) =>
    cluster.kubectl(['apply', '--server-side', '--field-manager=test', '-f', '-'], {
      input: stringify(obj),
    });
  await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'VirtualNetwork',
    metadata: { name: network },
    spec: { networkID: 200000 + parseInt(tag.slice(0, 4), 16), subnets: ['10.77.0.0/16'] },
  });
  await apply({
    apiVersion: 'castnet.io/v1alpha1',
    kind: 'MulticastGroup',
    metadata: { name: 'g', namespace: ns },
    spec: { network, address: GROUP },
  });
});

afterEach(async () => {
  for (const c of controllers.splice(0)) await c.dispose();
  for (const a of agents.splice(0)) await a.dispose();
});

afterAll(async () => {
  if (cluster) await stopCluster(cluster);
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the controller and an agent authenticate with the credential an exec plugin prints', async () => {
  const kubeconfig = await execKubeconfig('good', {
    CASTNET_TEST_TOKEN_FILE: tokenFile,
    CASTNET_TEST_EXEC_LOG: runLog,
  });
  // Whom the apiserver takes the plugin's credential for: the service account, not the admin.
  const review = await loadKubeConfig(kubeconfig)
    .makeApiClient(AuthenticationV1Api)
    .createSelfSubjectReview({ body: {} });
  expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${ns}:exec-user`);

  // The agent writes its report, the controller resolves the join into the group's status.
  const agent = agentWith(kubeconfig);
  await agent.registerNode(nodeRegistration(node, 41));
  const endpoint = (id: number) => ({
    network,
    node,
    endpointId: id,
    mac: `02:00:00:00:41:0${id}`,
    ips: [`10.77.0.${id}`],
  });
  const join = (id: number) => ({
    network,
    group: GROUP,
    node,
    endpointId: id,
    filter: { mode: 'exclude' as const, sources: [] },
  });
  await agent.publishEndpoints(node, [endpoint(1), endpoint(2)]);
  await agent.reportMemberships(node, [join(1)]);
  await controllerWith(kubeconfig).start();
  const membersAre = (want: string[]) =>
    eventually(`the status of group g to list ${want.join(', ')}`, async () => {
      const g = JSON.parse(
        await cluster.kubectl(['-n', ns, 'get', 'multicastgroup', 'g', '-o', 'json']),
      ) as MulticastGroup;
      const got = (g.status?.members ?? []).map((m) => `${m.node}/${m.endpointID}`);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`got ${got.join(', ')}`);
      return got;
    });
  await membersAre([`${node}/1`]);

  // client-node keeps the credential until its expirationTimestamp: more writes (the agent's
  // report, the controller's status) do not run the plugin again.
  const runs = await pluginRuns();
  expect(runs).toBeGreaterThanOrEqual(1);
  await agent.reportMemberships(node, [join(1), join(2)]);
  await membersAre([`${node}/1`, `${node}/2`]);
  expect(await pluginRuns()).toBe(runs);
});

interface BadPlugin {
  plugin: string;
  env: Record<string, string>;
  command?: string;
  reason: string;
}

test.each<BadPlugin>([
  {
    plugin: 'fails',
    env: { CASTNET_TEST_EXEC_FAIL: 'the token service is unreachable' },
    reason: 'the token service is unreachable',
  },
  {
    plugin: 'prints no credential',
    env: { CASTNET_TEST_EXEC_OUTPUT: 'not a credential' },
    reason: 'it did not print an ExecCredential',
  },
  {
    plugin: 'is missing',
    env: {},
    command: '/nonexistent/castnet-credential-plugin',
    reason: 'ENOENT',
  },
])(
  'an exec plugin that $plugin stops the controller at start and shows in the agent’s errors',
  async ({ plugin: which, env, command, reason }) => {
    const kubeconfig = await execKubeconfig(which.replaceAll(' ', '-'), env, command);
    const named = `kubeconfig ${kubeconfig}: user "exec-user": exec credential plugin "${command ?? plugin}" failed: `;
    const failure = await controllerWith(kubeconfig)
      .start()
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toContain(named);
    expect((failure as Error).message).toContain(reason);

    // The agent does not stop (it delivers without the apiserver) but says why it cannot list.
    const errors: string[] = [];
    agentWith(kubeconfig, (err) => errors.push((err as Error).message));
    await eventually('the agent to report why it cannot authenticate', async () =>
      errors.find((e) => e.includes(named) && e.includes(reason)),
    );
  },
);
