// The shared test cluster works the way castnet's tests use it: objects created directly, status
// written by the test in place of a kubelet, RBAC enforced for non-admin identities.
import { jest } from '@jest/globals';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import {
  Cluster,
  createNamespace,
  ensureCluster,
  serviceAccountKubeconfig,
  upstreamBin,
} from '../harness/k8s.js';

jest.setTimeout(180_000);

let cluster: Cluster;
let ns: string;
const nodeName = `cnk8s${process.pid}`;

beforeAll(async () => {
  cluster = await ensureCluster();
  ns = await createNamespace(cluster, 'cnk8s');
});

afterAll(async () => {
  // Namespaces stay Terminating without a controller-manager; the Node is cluster-scoped.
  await cluster?.kubectl(['delete', 'node', nodeName, '--ignore-not-found']);
  if (ns) await cluster?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

test('a second ensureCluster reuses the running cluster', async () => {
  const again = await ensureCluster();
  expect(again.server).toBe(cluster.server);
  expect(cluster.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  expect((await cluster.kubectl(['get', '--raw', '/readyz'])).trim()).toBe('ok');
});

test('Node and Pod objects are created directly and the test can play kubelet', async () => {
  await cluster.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: nodeName, labels: { 'castnet.io/test': 'smoke' } },
    }),
  });
  await cluster.kubectl(['apply', '-n', ns, '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p1' },
      spec: { nodeName, containers: [{ name: 'c', image: 'example.invalid/none' }] },
    }),
  });
  // No kubelet: the test writes the status a kubelet would.
  await cluster.kubectl([
    '-n',
    ns,
    'patch',
    'pod',
    'p1',
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { phase: 'Running', podIP: '10.244.1.7', podIPs: [{ ip: '10.244.1.7' }] } }),
  ]);

  const pod = JSON.parse(await cluster.kubectl(['-n', ns, 'get', 'pod', 'p1', '-o', 'json']));
  expect(pod.spec.nodeName).toBe(nodeName);
  expect(pod.status.podIP).toBe('10.244.1.7');
  const nodes = await cluster.kubectl(['get', 'nodes', '-l', 'castnet.io/test=smoke', '-o', 'name']);
  expect(nodes.split('\n')).toContain(`node/${nodeName}`);
});

test('RBAC applies to impersonated and token-authenticated service accounts', async () => {
  const sa = `system:serviceaccount:${ns}:reader`;
  // can-i exits 0 for yes and 1 for no.
  const canI = (as: string) =>
    cluster.kubectl(['auth', 'can-i', 'list', 'pods', '-n', ns, `--as=${as}`]).then(
      (out) => out.trim(),
      () => 'no',
    );
  expect(await canI(sa)).toBe('no');

  await cluster.kubectl(['-n', ns, 'create', 'role', 'pod-reader', '--verb=get,list', '--resource=pods']);
  await cluster.kubectl([
    '-n',
    ns,
    'create',
    'rolebinding',
    'reader',
    '--role=pod-reader',
    `--serviceaccount=${ns}:reader`,
  ]);
  expect(await canI(sa)).toBe('yes');

  const kubeconfig = await serviceAccountKubeconfig(cluster, ns, 'reader');
  const kubectl = path.join(upstreamBin, 'kubectl');
  const { stdout } = await run(kubectl, ['--kubeconfig', kubeconfig, '-n', ns, 'get', 'pods', '-o', 'name']);
  expect(stdout.split('\n')).toContain('pod/p1');
  await expect(run(kubectl, ['--kubeconfig', kubeconfig, '-n', 'default', 'get', 'pods'])).rejects.toThrow(
    /forbidden/i,
  );
  await expect(run(kubectl, ['--kubeconfig', kubeconfig, 'get', 'nodes'])).rejects.toThrow(/forbidden/i);
});
