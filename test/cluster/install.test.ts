// Installing, using and removing castnet as a user does on a real cluster: `helm install` makes the
// agent DaemonSet Ready on every node with one controller leading; a NetworkAttachmentDefinition with a
// delegated IPAM plugin (host-local, the node's own binary) addresses pods through the chart's agent;
// `helm uninstall` leaves no castnet link, file, socket or state directory on any node.
import { jest } from '@jest/globals';
import {
  apply,
  castnetNetwork,
  CASTNET_NAMESPACE,
  createNamespace,
  deleteNamespace,
  ensureMultus,
  helmInstallCastnet,
  helmUninstallCastnet,
  imageRef,
  net1Address,
  realCluster,
  type RealCluster,
  waitFor,
  waitPods,
  workloadDeployment,
} from '../harness/cluster.js';

jest.setTimeout(600_000);

let c: RealCluster;

beforeAll(async () => {
  c = await realCluster();
  await ensureMultus(c);
  await helmInstallCastnet(c);
}, 900_000);

/** What castnet may have put on a node: links, the plugin, the agent's sockets and state. */
async function castnetTraces(node: string): Promise<string[]> {
  const traces: string[] = [];
  const links = await c.nodeExec(node, 'ip', ['-o', 'link', 'show']);
  for (const m of links.matchAll(/^\d+: ([^:@]+)/gm)) {
    if (/^cn(br|vx|[0-9a-f]{11}$)/.test(m[1]!)) traces.push(`link ${m[1]}`);
  }
  const listing = await c.nodeExec(node, 'sh', [
    '-c',
    'ls -A /opt/cni/bin/castnet /etc/cni/net.d/10-castnet.conflist /run/castnet /var/lib/castnet 2>/dev/null; true',
  ]);
  for (const line of listing.split('\n').filter(Boolean)) traces.push(`file ${line}`);
  return traces;
}

describe('install', () => {
  test('the agent is Ready on every node and one controller leads', async () => {
    const ds = JSON.parse(
      await c.kubectl(['-n', CASTNET_NAMESPACE, 'get', 'daemonset', 'castnet-agent', '-o', 'json']),
    ) as {
      status: { numberReady: number; desiredNumberScheduled: number };
    };
    expect(ds.status).toMatchObject({ numberReady: c.nodes.length, desiredNumberScheduled: c.nodes.length });
    const controllers = JSON.parse(
      await c.kubectl([
        '-n',
        CASTNET_NAMESPACE,
        'get',
        'pods',
        '-l',
        'app.kubernetes.io/component=controller',
        '-o',
        'json',
      ]),
    ) as { items: { metadata: { name: string } }[] };
    const holder = await waitFor(
      async () => {
        const lease = JSON.parse(
          await c.kubectl(['-n', CASTNET_NAMESPACE, 'get', 'lease', 'castnet-controller', '-o', 'json']),
        ) as {
          spec: { holderIdentity?: string };
        };
        return lease.spec.holderIdentity || undefined;
      },
      { what: 'a controller holding the leader Lease', timeoutMs: 120_000 },
    );
    expect(controllers.items.map((p) => p.metadata.name)).toContain(holder);
  });

  test('delegated IPAM: host-local on the node addresses the pod and frees the address on delete', async () => {
    const ns = await createNamespace(c, 'ipam');
    const net = `${ns}-net`;
    try {
      await apply(c, [
        ...castnetNetwork({
          namespace: ns,
          name: net,
          networkID: 3001,
          subnet: '10.130.0.0/16',
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.130.7.0/24', rangeStart: '10.130.7.10', rangeEnd: '10.130.7.20' }]],
          },
        }),
        workloadDeployment({
          namespace: ns,
          name: 'pod',
          node: c.nodes[1],
          image: await imageRef('workload'),
          networks: [net],
        }),
      ]);
      const [pod] = await waitPods(c, ns, 'app=pod', 1);
      const ip = net1Address(pod!);
      expect(ip).toMatch(/^10\.130\.7\.(1\d|20)$/);
      // host-local's own record of the lease, on the node where the pod runs.
      const leases = () =>
        c.nodeExec(pod!.node, 'sh', ['-c', `ls /var/lib/cni/networks/${net} 2>/dev/null; true`]);
      expect((await leases()).split('\n')).toContain(ip);
      await c.kubectl(['-n', ns, 'scale', 'deployment/pod', '--replicas=0']);
      await waitFor(async () => ((await leases()).split('\n').includes(ip) ? undefined : true), {
        what: `host-local lease of ${ip} released`,
        timeoutMs: 120_000,
      });
    } finally {
      await deleteNamespace(c, ns).catch(() => undefined);
      await c.kubectl(['delete', 'virtualnetwork', net, '--ignore-not-found']).catch(() => undefined);
    }
  });

  test('helm uninstall leaves no castnet link, file, socket or state directory on any node', async () => {
    // Something castnet wired, so there is something to remove.
    const ns = await createNamespace(c, 'uninst');
    const net = `${ns}-net`;
    const image = await imageRef('workload');
    await apply(c, [
      ...castnetNetwork({ namespace: ns, name: net, networkID: 3002, subnet: '10.131.0.0/16' }),
      ...c.nodes.map((node, i) =>
        workloadDeployment({ namespace: ns, name: `p${i}`, node, image, networks: [net] }),
      ),
    ]);
    for (let i = 0; i < c.nodes.length; i++) await waitPods(c, ns, `app=p${i}`, 1);
    for (const node of c.nodes) expect((await castnetTraces(node)).length).toBeGreaterThan(0);
    await deleteNamespace(c, ns);
    await c.kubectl(['delete', 'virtualnetwork', net, '--ignore-not-found']);

    await helmUninstallCastnet(c);
    for (const node of c.nodes)
      expect({ node, traces: await castnetTraces(node) }).toEqual({ node, traces: [] });
    // Nothing of the release is left in the API once its pods are gone. What castnet wrote at run time
    // stays, as docs/getting-started.md says: the Leases of the nodes' IPAM blocks (a reinstall gives
    // each node its block again) and the leader Lease; deleting the namespace removes them.
    const left = await waitFor(
      async () => {
        const out = await c.kubectl([
          'get',
          'all,serviceaccounts,roles,rolebindings,configmaps,secrets,leases',
          '-n',
          CASTNET_NAMESPACE,
          '-o',
          'name',
        ]);
        const names = out.split('\n').filter((l) => l && !/\/(default|kube-root-ca\.crt)$/.test(l));
        return names.some((n) => n.startsWith('pod/')) ? undefined : names;
      },
      { what: 'the release gone from castnet-system', timeoutMs: 120_000 },
    );
    expect(
      left.filter((n) => !/^lease\.coordination\.k8s\.io\/castnet-(controller|pool-\d+)$/.test(n)),
    ).toEqual([]);
    // The other suites' files install again in their beforeAll; so does this one's next run.
    await helmInstallCastnet(c);
  });
});
