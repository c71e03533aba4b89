// The chart's components started with the command lines the chart renders, on a private real
// apiserver with the chart's RBAC and admission policy: the agent (in a network namespace acting as
// the node, with a token bound to a pod on that node, as the kubelet projects it) publishes its own
// node's MembershipReport and passes the rendered readiness probe; the controller becomes ready and
// resolves a group; the uninstall hook's Job waits until the cleanup DaemonSet is ready everywhere.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { run, spawnIn, stop } from '../../pkg/sys/exec.js';
import { castnetBin } from '../harness/agent.js';
import { repoRoot } from '../harness/cni.js';
import {
  createNamespace,
  ensureCluster,
  nodeBoundToken,
  stopCluster,
  upstreamBin,
  type Cluster,
} from '../harness/k8s.js';
import { addNetns, delNetns, netnsTag } from '../harness/netns.js';
import { eventually, installCrds } from '../k8s/fixtures.js';

const tag = netnsTag('chc');
const nodeNs = `${tag}n`;
const release = 'castnet';
const nodeName = `node-${randomBytes(2).toString('hex')}`;
const hostIp = '10.213.0.1';
const underlayPort = 14000 + (process.pid % 1000);
const healthPort = 15000 + (process.pid % 1000);
const metricsPort = 19000 + (process.pid % 1000);
const agentMetricsPort = 20000 + (process.pid % 1000);
let cluster: Cluster;
let ns: string;
let dir: string;
let relay: Server | undefined;
const children: ChildProcess[] = [];

interface Container {
  name: string;
  command?: string[];
  args?: string[];
  readinessProbe?: { exec?: { command: string[] } };
}
interface Workload {
  kind: string;
  metadata: { name: string };
  spec: { template: { spec: { containers: Container[]; initContainers?: Container[] } } };
}
let rendered: Workload[];
const workload = (kind: string, name: string): Workload => {
  const w = rendered.find((o) => o.kind === kind && o.metadata.name === name);
  if (!w) throw new Error(`the chart renders no ${kind} ${name}`);
  return w;
};

/**
 * A rendered command line as the kubelet runs it ($(VAR) expanded from `env`, $$ to $), with the
 * image's /opt/castnet/bin/castnet as the repository's bin/castnet after `make build`
 * (test/chart/dockerfile.test.ts) and host paths moved into the test's directory.
 */
function localCommand(
  argv: string[],
  env: Record<string, string>,
  paths: Record<string, string> = {},
): string[] {
  expect(argv.join(' ')).toContain('/opt/castnet/bin/castnet');
  const subs: Record<string, string> = { ...paths, '/opt/castnet/bin/castnet': castnetBin };
  return argv.map((a) => {
    const expanded = a.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name?: string) =>
      name === undefined ? '$' : (env[name] ?? m),
    );
    return Object.entries(subs).reduce((x, [from, to]) => x.split(from).join(to), expanded);
  });
}

function start(child: ChildProcess, what: string): { output: () => string } {
  children.push(child);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  child.on('exit', (code) => (out += `\n[${what} exited ${code}]`));
  return { output: () => out };
}

/** A kubeconfig with `token`, using the admin kubeconfig's server and CA. */
async function tokenKubeconfig(file: string, token: string, server: string): Promise<string> {
  const ca = await readFile(path.join(path.dirname(cluster.kubeconfigPath), 'pki/ca.crt'));
  await writeFile(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': ca.toString('base64') } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', namespace: ns } }],
      'current-context': 'x',
    }),
  );
  return file;
}

/** A kubeconfig for one of the chart's service accounts (the chart created it). */
async function serviceAccountKubeconfig(sa: string): Promise<string> {
  const token = (await cluster.kubectl(['-n', ns, 'create', 'token', sa])).trim();
  return tokenKubeconfig(path.join(dir, `${sa}.kubeconfig`), token, cluster.server);
}

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnchart${process.pid}` });
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'castnet');
  dir = await mkdtemp(path.join(tmpdir(), `${tag}-`));
  const { stdout } = await run(path.join(upstreamBin, 'helm'), [
    ...['template', release, path.join(repoRoot, 'charts/castnet'), '--namespace', ns],
    ...['--kube-version', '1.37.0', '--set', 'mode=primary'],
    ...['--set', `controller.metricsPort=${metricsPort}`, '--set', `agent.underlayPort=${underlayPort}`],
    ...['--set', `agent.metrics.port=${agentMetricsPort}`, '--set', `agent.healthPort=${healthPort}`],
  ]);
  await cluster.kubectl(['apply', '--server-side', '-f', '-'], { input: stdout });
  rendered = parseAllDocuments(stdout)
    .map((d) => d.toJS() as Workload | null)
    .filter((o): o is Workload => !!o?.kind);
}, 240_000);

afterAll(async () => {
  for (const c of children) await stop(c);
  relay?.close();
  await delNetns(nodeNs);
  if (dir) await rm(dir, { recursive: true, force: true });
  if (cluster) await stopCluster(cluster);
}, 60_000);

test('the agent, as rendered, claims a pool index, installs the CNI, publishes its own node’s report and gets ready', async () => {
  const ds = workload('DaemonSet', `${release}-agent`);
  // The node: a Node, a pod of the agent's service account on it, and a token bound to that pod.
  const token = await nodeBoundToken(cluster, {
    namespace: ns,
    serviceAccount: `${release}-agent`,
    nodeName,
    podName: 'agent-0',
  });
  const kubeconfig = await tokenKubeconfig(path.join(dir, 'agent.kubeconfig'), token, cluster.server);
  // POD_UID: the kubelet's metadata.uid; the agent names itself with it and the probe checks it.
  const env = { NODE_NAME: nodeName, HOST_IP: hostIp, POD_UID: randomBytes(8).toString('hex') };

  const paths = {
    '/host/cni/bin': path.join(dir, 'cni-bin'),
    '/host/cni/net.d': path.join(dir, 'cni-conf'),
    '/run/castnet': path.join(dir, 'run'),
    '/var/lib/castnet': path.join(dir, 'state'),
  };
  // The DaemonSet's hostPath volumes are DirectoryOrCreate: the kubelet makes them.
  await run('mkdir', ['-p', ...Object.values(paths)]);
  const init = (name: string) => ds.spec.template.spec.initContainers!.find((c) => c.name === name)!;
  const [claim, ...claimArgs] = localCommand(init('claim-pool-index').command!, env, paths);
  await run(claim, [...claimArgs, `--kubeconfig=${kubeconfig}`]);
  const poolIndex = Number(await readFile(path.join(paths['/var/lib/castnet'], 'pool-index'), 'utf8'));
  const [install, ...installArgs] = localCommand(init('install-cni').command!, env, paths);
  await run(install, installArgs);
  const conflist = JSON.parse(
    await readFile(path.join(paths['/host/cni/net.d'], '10-castnet.conflist'), 'utf8'),
  ) as {
    plugins: Array<{ agentSocket: string }>;
  };
  expect(conflist.plugins[0].agentSocket).toBe(path.join(paths['/run/castnet'], 'agent.sock'));

  // A node namespace cannot reach the host's loopback, where the apiserver listens: relay the same
  // address and port inside it through a unix socket.
  const api = new URL(cluster.server);
  const relaySocket = path.join(dir, 'apiserver.sock');
  relay = createServer((c) => {
    const up = createConnection(Number(api.port), api.hostname);
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => relay!.listen(relaySocket, r));
  await addNetns(nodeNs);
  await run('ip', ['-n', nodeNs, 'addr', 'add', `${hostIp}/32`, 'dev', 'lo']);
  const socat = spawnIn(nodeNs, 'socat', [
    `TCP-LISTEN:${api.port},bind=${api.hostname},fork,reuseaddr`,
    `UNIX-CONNECT:${relaySocket}`,
  ]);
  start(socat, 'socat');

  const [agentContainer] = ds.spec.template.spec.containers;
  const [cmd, ...args] = localCommand([...agentContainer.command!, ...agentContainer.args!], env, paths);
  expect(args).toContain('--lookup=kubernetes');
  const agent = start(spawnIn(nodeNs, cmd, [...args, `--kubeconfig=${kubeconfig}`]), 'agent');

  const report = await eventually(
    `the agent's MembershipReport ${nodeName}\n${agent.output()}`,
    async () => {
      const out = await cluster.kubectl([
        'get',
        'membershipreport',
        nodeName,
        '-o',
        'json',
        '--ignore-not-found',
      ]);
      const r = out
        ? (JSON.parse(out) as {
            spec: { node: string; underlay: { address: string; port: number } };
            status?: { conditions?: Array<{ type: string; status: string }> };
          })
        : undefined;
      // Its status too: the chart's RBAC and admission policy let it write its own report's status,
      // both the report writer's condition and the underlay health probes'.
      const types = new Set(r?.status?.conditions?.map((c) => c.type));
      return types.has('Truncated') && types.has('UnderlayHealthy') ? r : undefined;
    },
    30_000,
  );
  expect(report.spec).toMatchObject({
    node: nodeName,
    underlay: { address: hostIp, port: underlayPort },
    poolIndex,
  });
  expect(report.status!.conditions).toContainEqual(
    expect.objectContaining({ type: 'Truncated', status: 'False' }),
  );

  // Other nodes claiming at the same time get other indexes; a node claiming again gets its own.
  const claimFor = async (node: string) => {
    const out = path.join(dir, `pool-index-${node}`);
    const argv = localCommand(
      init('claim-pool-index').command!,
      { NODE_NAME: node },
      { ...paths, [path.join(paths['/var/lib/castnet'], 'pool-index')]: out },
    );
    await run(argv[0], [...argv.slice(1), `--kubeconfig=${kubeconfig}`]);
    return Number(await readFile(out, 'utf8'));
  };
  const others = await Promise.all(['node-x', 'node-y', 'node-z'].map(claimFor));
  expect(new Set([poolIndex, ...others]).size).toBe(4);
  expect(await claimFor(nodeName)).toBe(poolIndex);

  const probe = agentContainer.readinessProbe!.exec!.command;
  // As the kubelet does: probe until it passes (the agent opens its socket after its first sync), in
  // the container's environment (the probe is a shell command reading POD_UID).
  const probeEnv = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  await eventually(
    `the rendered readiness probe\n${agent.output()}`,
    () =>
      run('env', [...probeEnv, ...localCommand(probe, env, paths)]).then(
        () => true,
        () => undefined,
      ),
    30_000,
  );
  // Another pod's agent on the socket (a rolling update's predecessor) does not make this one Ready.
  await expect(
    run('env', [...probeEnv, 'POD_UID=predecessor', ...localCommand(probe, env, paths)]),
  ).rejects.toThrow(/not "predecessor"/);
  expect(agent.output()).not.toMatch(/Forbidden|403/);

  // The metrics sidecar, as rendered (unix sockets cross network namespaces; it runs on the host's).
  const sidecar = ds.spec.template.spec.containers.find((c) => c.name === 'metrics')!;
  const [metricsCmd, ...metricsArgs] = localCommand(sidecar.command!, env, paths);
  const metrics = start(
    spawn(metricsCmd, metricsArgs, { stdio: ['ignore', 'pipe', 'pipe'] }),
    'agent-metrics',
  );
  const text = await eventually(
    `the agent's /metrics\n${metrics.output()}`,
    async () => {
      const res = await fetch(`http://127.0.0.1:${agentMetricsPort}/metrics`).catch(() => undefined);
      return res?.status === 200 ? res.text() : undefined;
    },
    20_000,
  );
  expect(text).toContain('castnet_agent_up 1');
  expect(text).toMatch(/^castnet_agent_endpoints 0$/m);
}, 120_000);

test('the controller, as rendered, under its own service account: ready, and it resolves a group', async () => {
  const deployment = workload('Deployment', `${release}-controller`);
  const [c] = deployment.spec.template.spec.containers;
  const kubeconfig = await serviceAccountKubeconfig(`${release}-controller`);
  const [, ...args] = localCommand([...c.command!, ...c.args!], {
    POD_NAMESPACE: ns,
    POD_NAME: 'controller-0',
  });
  const controller = start(
    spawn(castnetBin, [...args, `--kubeconfig=${kubeconfig}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    'controller',
  );
  await eventually(
    `controller /readyz\n${controller.output()}`,
    async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    30_000,
  );
  const net = `net-${randomBytes(2).toString('hex')}`;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'VirtualNetwork',
      metadata: { name: net },
      spec: { networkID: 4321, subnets: ['10.43.0.0/16'] },
    }),
  });
  // A pod the group selects, with an endpoint on the network in its node's report (as its agent
  // would publish it): the controller must resolve it as the group's one member.
  const memberNode = `${nodeName}-m`;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: memberNode } }),
  });
  const feedPod = JSON.parse(
    await cluster.kubectl(['apply', '-o', 'json', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'feed-0', namespace: ns, labels: { app: 'feed' } },
        spec: { nodeName: memberNode, containers: [{ name: 'c', image: 'example.invalid/feed' }] },
      }),
    }),
  ) as { metadata: { uid: string } };
  await cluster.kubectl(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'MembershipReport',
      metadata: { name: memberNode },
      spec: {
        node: memberNode,
        underlay: { address: '192.0.2.77', port: 4790 },
        poolIndex: 77,
        endpoints: [
          {
            endpointID: 1,
            network: net,
            mac: '02:00:0a:2b:00:01',
            ips: ['10.43.0.1'],
            pod: { namespace: ns, name: 'feed-0', uid: feedPod.metadata.uid },
          },
        ],
        memberships: [],
      },
    }),
  });
  await cluster.kubectl(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'castnet.io/v1alpha1',
      kind: 'MulticastGroup',
      metadata: { name: 'feed', namespace: ns },
      spec: { network: net, address: '239.4.3.2', selectors: { pods: { matchLabels: { app: 'feed' } } } },
    }),
  });
  // Resolved (docs/api.md "Status"): the network exists and has multicast on, so Ready is True
  // with reason Resolved, and the selected pod's endpoint is the one member.
  type Condition = { type: string; status: string; reason: string };
  type Status = {
    conditions?: Condition[];
    counts?: { members: number };
    members?: Array<{ node: string; endpointID: number; pod: string; via: string }>;
  };
  const status = await eventually(
    `MulticastGroup feed to resolve its member\n${controller.output()}`,
    async () => {
      const out = await cluster.kubectl(['-n', ns, 'get', 'multicastgroup', 'feed', '-o', 'json']);
      const st = (JSON.parse(out) as { status?: Status }).status;
      return st?.counts?.members ? st : undefined;
    },
    30_000,
  );
  const condition = (type: string) => status.conditions!.find((c) => c.type === type);
  expect(condition('Ready')).toMatchObject({ status: 'True', reason: 'Resolved' });
  expect(condition('MembersResolved')).toMatchObject({ status: 'True' });
  expect(status.counts).toMatchObject({ members: 1, nodes: 1, selector: 1 });
  expect(status.members).toEqual([
    expect.objectContaining({ node: memberNode, endpointID: 1, pod: `${ns}/feed-0`, via: 'selector' }),
  ]);
  expect(controller.output()).not.toMatch(/Forbidden|403/);
}, 120_000);

test('the uninstall hook’s Job, as rendered, waits until the node cleanup has run on every node', async () => {
  const job = workload('Job', `${release}-node-cleanup-wait`);
  const [c] = job.spec.template.spec.containers;
  const kubeconfig = await serviceAccountKubeconfig(`${release}-node-cleanup`);
  /** Runs the Job's command with its timeout shortened to `timeoutS`; resolves with the exit code and output. */
  const runWait = async (timeoutS: number): Promise<{ code: number | null; output: string }> => {
    const args = localCommand(c.command!, {})
      .slice(1)
      .map((a) => (a.startsWith('--timeout=') ? `--timeout=${timeoutS}` : a));
    const wait = spawn(castnetBin, [...args, `--kubeconfig=${kubeconfig}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const waiting = start(wait, 'wait-daemonset');
    const code = await new Promise<number | null>((r) => wait.once('exit', r));
    return { code, output: waiting.output() };
  };
  // No DaemonSet controller runs here: set the status it would report.
  const setStatus = (ready: number) =>
    cluster.kubectl([
      ...['-n', ns, 'patch', 'daemonset', `${release}-node-cleanup`, '--subresource=status', '--type=merge'],
      '-p',
      JSON.stringify({
        status: {
          observedGeneration: 1,
          desiredNumberScheduled: 2,
          currentNumberScheduled: 2,
          numberMisscheduled: 0,
          numberReady: ready,
          updatedNumberScheduled: 2,
        },
      }),
    ]);
  // One node of two has run its cleanup: the wait keeps polling until its deadline and says what it saw.
  await setStatus(1);
  const incomplete = await runWait(3);
  expect(incomplete.code).toBe(1);
  expect(incomplete.output).toContain(`daemonset ${ns}/${release}-node-cleanup: 1 of 2 pods ready after 3 s`);
  // Both have: the wait ends successfully, under the Job's service account.
  await setStatus(2);
  const done = await runWait(60);
  expect(done.code).toBe(0);
  expect(done.output).not.toMatch(/Forbidden|403/);
  expect(incomplete.output).not.toMatch(/Forbidden|403/);
}, 120_000);
