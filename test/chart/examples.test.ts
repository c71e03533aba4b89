// docs/examples: the KubeVirt walk-through's manifests. castnet's own objects pass the real
// apiserver's validation (server-side dry run); the NetworkAttachmentDefinition's config passes
// castnet-cni's own parser and names the example's VirtualNetwork; the VirtualMachine's bridge NIC
// uses that NAD, and the MulticastGroup selects the VM. (KubeVirt's and Multus' CRDs are not in the
// test cluster, so those two kinds are checked for the fields castnet relies on.)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { macSchema, parseNetConf } from '../../pkg/cni/netconf.js';
import { repoRoot } from '../harness/cni.js';
import { createNamespace, ensureCluster, type Cluster } from '../harness/k8s.js';
import { installCrds } from '../k8s/fixtures.js';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: Record<string, unknown>;
}

const dir = path.join(repoRoot, 'docs/examples');
const objects: Obj[] = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS() as Obj));
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);

let cluster: Cluster;
let ns: string;

beforeAll(async () => {
  cluster = await ensureCluster();
  // The CRDs the examples use, whether or not another test file installed them in this cluster first.
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'cnexamples');
}, 240_000);

afterAll(async () => {
  await cluster?.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
});

test('the examples hold a VirtualNetwork, a NetworkAttachmentDefinition, a VirtualMachine and a MulticastGroup', () => {
  expect(objects.map((o) => o.kind).sort()).toEqual([
    'MulticastGroup',
    'NetworkAttachmentDefinition',
    'VirtualMachine',
    'VirtualNetwork',
  ]);
});

test('castnet objects pass the apiserver’s validation (server-side dry run)', async () => {
  const castnet = objects.filter((o) => o.apiVersion.startsWith('castnet.io/'));
  expect(castnet.length).toBeGreaterThan(0);
  for (const o of castnet) {
    const inTestNs = o.metadata.namespace ? { ...o, metadata: { ...o.metadata, namespace: ns } } : o;
    const out = await cluster.kubectl(
      ['apply', '--server-side', '--dry-run=server', '-o', 'json', '-f', '-'],
      {
        input: JSON.stringify(inTestNs),
      },
    );
    expect((JSON.parse(out) as Obj).metadata.name).toBe(o.metadata.name);
  }
});

test('the NetworkAttachmentDefinition is a config castnet-cni accepts, on the example network and the chart’s socket', () => {
  const [nad] = byKind('NetworkAttachmentDefinition');
  const conf = parseNetConf(JSON.parse(nad.spec.config as string) as Record<string, unknown>);
  const [network] = byKind('VirtualNetwork');
  expect(conf.network).toBe(network.metadata.name);
  const values = parseYaml(readFileSync(path.join(repoRoot, 'charts/castnet/values.yaml'), 'utf8')) as {
    agent: { socketDir: string };
  };
  expect(conf.agentSocket).toBe(`${values.agent.socketDir}/agent.sock`);
  expect(JSON.parse(nad.spec.config as string)).toMatchObject({ capabilities: { mac: true } });
});

test('the VirtualMachine attaches a bridge-binding NIC to that NAD, and the group selects the VM', () => {
  const [vm] = byKind('VirtualMachine');
  const [nad] = byKind('NetworkAttachmentDefinition');
  type Tpl = {
    metadata: { labels: Record<string, string> };
    spec: {
      domain: { devices: { interfaces: Array<{ name: string; bridge?: object; macAddress?: string }> } };
      networks: Array<{ name: string; multus?: { networkName: string } }>;
    };
  };
  const tpl = (vm.spec as { template: Tpl }).template;
  const nics = tpl.spec.domain.devices.interfaces.filter((i) => i.bridge);
  expect(nics).toHaveLength(1);
  const net = tpl.spec.networks.find((n) => n.name === nics[0].name);
  expect(net?.multus?.networkName).toBe(nad.metadata.name);
  expect(vm.metadata.namespace).toBe(nad.metadata.namespace);
  expect(macSchema.safeParse(nics[0].macAddress).success).toBe(true);

  const [group] = byKind('MulticastGroup');
  const selector = (group.spec.selectors as { vmis: { matchLabels: Record<string, string> } }).vmis
    .matchLabels;
  expect(tpl.metadata.labels).toMatchObject(selector);
  expect(group.spec.network).toBe(byKind('VirtualNetwork')[0].metadata.name);
  expect(group.metadata.namespace).toBe(vm.metadata.namespace);
});

test('the README’s first network, attachment and group (install section) are valid', async () => {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Install on a cluster'));
  const yamlBlock = /```yaml\n([\s\S]*?)```/.exec(section)![1];
  // A first example a reader takes in at a glance.
  expect(yamlBlock.trim().split('\n').length).toBeLessThanOrEqual(20);
  const docs = parseAllDocuments(yamlBlock).map((d) => d.toJS() as Obj);
  expect(docs.map((d) => d.kind)).toEqual([
    'VirtualNetwork',
    'NetworkAttachmentDefinition',
    'MulticastGroup',
  ]);
  const [network, nad, group] = docs as [Obj, Obj & { spec: { config: string } }, Obj];
  // The attachment is what Multus hands castnet-cni: castnet's own parser takes it, for that network.
  const conf = parseNetConf(JSON.parse(nad.spec.config) as Record<string, unknown>);
  expect(conf).toMatchObject({ type: 'castnet', network: network.metadata.name });
  expect(group.spec.network).toBe(network.metadata.name);
  for (const o of [network, group]) {
    const inTestNs = o.metadata.namespace ? { ...o, metadata: { ...o.metadata, namespace: ns } } : o;
    await cluster.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], {
      input: JSON.stringify(inTestNs),
    });
  }
});
