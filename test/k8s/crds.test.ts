// castnet's CRDs on a real kube-apiserver: they install, good objects are accepted, and bad ones are
// rejected by the apiserver's own OpenAPI + CEL validation with a message naming the field.
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { createNamespace, ensureCluster, type Cluster } from '../harness/k8s.js';
import { installCrds } from './fixtures.js';
import { errorMessage } from '../../pkg/base/errors.js';

const suffix = randomBytes(3).toString('hex');
let cluster: Cluster;
let ns: string;

const vnet = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'castnet.io/v1alpha1',
  kind: 'VirtualNetwork',
  metadata: { name },
  spec,
});
const mcg = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'castnet.io/v1alpha1',
  kind: 'MulticastGroup',
  metadata: { name, namespace: ns },
  spec: { network: 'blue', address: '239.1.1.1', ...spec },
});
const report = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'castnet.io/v1alpha1',
  kind: 'MembershipReport',
  metadata: { name },
  spec: { node: name, underlay: { address: '192.0.2.10', port: 4790 }, ...spec },
});

const vmaddr = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'castnet.io/v1alpha1',
  kind: 'VMAddress',
  metadata: { name, namespace: ns },
  spec: { network: 'blue', vmi: 'db-0', ips: ['10.42.1.5'], ...spec },
});

/** Server-side dry run: full validation, nothing stored. Resolves with '' or rejects with stderr. */
async function dryRun(obj: object): Promise<string> {
  return cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stringify(obj) });
}

async function rejection(obj: object): Promise<string> {
  try {
    await dryRun(obj);
  } catch (err) {
    return errorMessage(err);
  }
  throw new Error(`the apiserver accepted ${JSON.stringify(obj)}`);
}

beforeAll(async () => {
  cluster = await ensureCluster();
  await installCrds(cluster);
  ns = await createNamespace(cluster, 'cncrd');
}, 240_000);

afterAll(async () => {
  if (!cluster) return;
  await cluster.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  await cluster.kubectl([
    'delete',
    'virtualnetwork,membershipreport',
    '-l',
    `castnet-test=${suffix}`,
    '--wait=false',
  ]);
});

test('the CRDs are served with their short names, printer columns and defaults', async () => {
  const name = `crd-ok-${suffix}`;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: stringify({
      ...vnet(name, { networkID: 4242, subnets: ['10.42.0.0/16', 'fd00:42::/64'] }),
      metadata: { name, labels: { 'castnet-test': suffix } },
    }),
  });
  const got = JSON.parse(await cluster.kubectl(['get', 'vnet', name, '-o', 'json']));
  expect(got.spec).toMatchObject({
    mtu: 1400,
    multicast: { enabled: true, queryIntervalSeconds: 125, robustness: 2 },
    broadcast: { enabled: true, arpProxy: true },
    rateLimits: {
      broadcast: { packetsPerSecond: 1000, burst: 2000 },
      arp: { packetsPerSecond: 200, burst: 400 },
      multicast: { packetsPerSecond: 50000, burst: 10000 },
    },
  });
  const table = await cluster.kubectl(['get', 'vnet', name]);
  expect(table).toMatch(/NAME\s+ID\s+SUBNETS\s+MTU\s+MULTICAST\s+BROADCAST\s+READY\s+AGE/);
  expect(table).toContain('4242');

  await cluster.kubectl(['apply', '-f', '-'], {
    input: stringify(
      mcg('ssm', {
        address: '232.1.2.3',
        allowedSources: ['10.42.0.9'],
        staticMembers: ['10.42.0.5', '239.9.9.9'],
      }),
    ),
  });
  expect(await cluster.kubectl(['-n', ns, 'get', 'mcg'])).toMatch(
    /NAME\s+NETWORK\s+ADDRESS\s+MEMBERS\s+NODES\s+READY\s+AGE/,
  );
  expect(await dryRun(mcg('v6', { address: 'ff3e::8000:1', allowedSources: ['fd00:42::9'] }))).toContain(
    'created (server dry run)',
  );
  expect(
    await dryRun(
      report(`node-${suffix}`, {
        endpoints: [{ endpointID: 1, network: 'blue', mac: '02:00:00:00:00:01', ips: ['10.42.0.5'] }],
        memberships: [{ network: 'blue', group: '239.1.1.1', endpointID: 1 }],
      }),
    ),
  ).toContain('created (server dry run)');
  expect(await dryRun(vmaddr('db-0.blue', { ips: ['10.42.1.5', 'fd00:42::5'] }))).toContain(
    'created (server dry run)',
  );
});

// Each bad object, and what the apiserver must say about it: the field, and the reason.
const bad: Array<[string, () => object, RegExp[]]> = [
  [
    'network ID out of range',
    () => vnet('bad-id', { networkID: 16777216, subnets: ['10.0.0.0/16'] }),
    [/spec\.networkID/, /less than or equal to 16777215/],
  ],
  [
    'subnet not a CIDR',
    () => vnet('bad-cidr', { networkID: 5, subnets: ['10.0.0.0'] }),
    [/spec\.subnets\[0\]/, /must be a CIDR/],
  ],
  [
    'subnet with host bits',
    () => vnet('bad-host', { networkID: 5, subnets: ['10.0.0.1/16'] }),
    [/spec\.subnets\[0\]/, /network address \(host bits zero\)/],
  ],
  [
    'overlapping subnets',
    () => vnet('bad-overlap', { networkID: 5, subnets: ['10.0.0.0/16', '10.0.1.0/24'] }),
    [/spec\.subnets/, /must not overlap/],
  ],
  [
    'a rate limit of 0 frames a second',
    () =>
      vnet('bad-rate', {
        networkID: 5,
        subnets: ['10.5.0.0/16'],
        rateLimits: { arp: { packetsPerSecond: 0 } },
      }),
    [/spec\.rateLimits\.arp\.packetsPerSecond/, /greater than or equal to 1/],
  ],
  [
    'a burst above the maximum',
    () =>
      vnet('bad-burst', {
        networkID: 5,
        subnets: ['10.5.0.0/16'],
        rateLimits: { broadcast: { burst: 1000001 } },
      }),
    [/spec\.rateLimits\.broadcast\.burst/, /less than or equal to 1000000/],
  ],
  [
    'IPv6 network with a small MTU',
    () => vnet('bad-mtu', { networkID: 5, subnets: ['fd00::/64'], mtu: 1000 }),
    [/spec\.mtu/, /at least 1280/],
  ],
  [
    'too many subnets',
    () => vnet('bad-many', { networkID: 5, subnets: Array.from({ length: 9 }, (_, i) => `10.${i}.0.0/16`) }),
    [/spec\.subnets/, /must have at most 8 items/],
  ],
  [
    'allowedNamespaces entry that is not a namespace name',
    () => vnet('bad-ns', { networkID: 5, subnets: ['10.0.0.0/16'], allowedNamespaces: ['Tenant_A'] }),
    [/spec\.allowedNamespaces\[0\]/, /should match/],
  ],
  [
    'allowedNamespaces with a repeated namespace',
    () => vnet('bad-ns-dup', { networkID: 5, subnets: ['10.0.0.0/16'], allowedNamespaces: ['a', 'a'] }),
    [/spec\.allowedNamespaces\[1\]/, /[Dd]uplicate/],
  ],
  [
    'too many allowedNamespaces',
    () =>
      vnet('bad-ns-many', {
        networkID: 5,
        subnets: ['10.0.0.0/16'],
        allowedNamespaces: Array.from({ length: 257 }, (_, i) => `ns-${i}`),
      }),
    [/spec\.allowedNamespaces/, /must have at most 256 items/],
  ],
  [
    'unicast group address',
    () => mcg('bad-unicast', { address: '10.1.2.3' }),
    [/spec\.address/, /must be a multicast address/],
  ],
  [
    'non-canonical IPv6 group',
    () => mcg('bad-canon', { address: 'FF3E:0::1' }),
    [/spec\.address/, /canonical form/],
  ],
  ['link-local group', () => mcg('bad-ll', { address: '224.0.0.251' }), [/spec\.address/, /link-local/]],
  [
    'unicast MAC as group',
    () => mcg('bad-mac', { address: '02:00:00:00:00:01' }),
    [/spec\.address/, /group bit/],
  ],
  [
    'broadcast MAC as group',
    () => mcg('bad-bcast', { address: 'ff:ff:ff:ff:ff:ff' }),
    [/spec\.address/, /broadcast/],
  ],
  [
    'group nests itself',
    () => mcg('selfish', { nestedGroups: ['other', 'selfish'] }),
    [/spec\.nestedGroups/, /must not contain the group itself/],
  ],
  [
    'group lists its own address',
    () => mcg('self-static', { staticMembers: ['239.1.1.1'] }),
    [/spec\.staticMembers/, /own address/],
  ],
  [
    'allowedSources on a non-SSM group',
    () => mcg('bad-ssm', { address: '239.1.1.1', allowedSources: ['10.0.0.1'] }),
    [/spec\.allowedSources/, /only to source-specific multicast/],
  ],
  [
    'IPv6 SSM source for an IPv4 group',
    () => mcg('bad-ssm-fam', { address: '232.1.1.1', allowedSources: ['fd00::1'] }),
    [/spec\.allowedSources/, /same family as spec\.address/],
  ],
  [
    'multicast address as an allowed source',
    () => mcg('bad-src', { address: '232.1.1.1', allowedSources: ['239.0.0.1'] }),
    [/spec\.allowedSources\[0\]/, /unicast IP/],
  ],
  [
    'static member of the wrong family',
    () => mcg('bad-fam', { staticMembers: ['fd00::5'] }),
    [/spec\.staticMembers/, /same family as spec\.address/],
  ],
  [
    'static member that is not an address',
    () => mcg('bad-member', { staticMembers: ['pod-a'] }),
    [/spec\.staticMembers\[0\]/, /canonical IP address or a MAC/],
  ],
  [
    'too many static members',
    () => mcg('big', { staticMembers: Array.from({ length: 257 }, (_, i) => `10.0.${i >> 8}.${i & 255}`) }),
    [/spec\.staticMembers/, /must have at most 256 items/],
  ],
  [
    'empty pod selector',
    () => mcg('bad-sel', { selectors: { pods: {} } }),
    [/spec\.selectors\.pods/, /matchLabels or matchExpressions/],
  ],
  [
    'In without values',
    () => mcg('bad-expr', { selectors: { vmis: { matchExpressions: [{ key: 'a', operator: 'In' }] } } }),
    [/spec\.selectors\.vmis\.matchExpressions\[0\]/, /values must be non-empty for In/],
  ],
  [
    'report named after another node',
    () => ({ ...report(`n-${suffix}`, {}), metadata: { name: `other-${suffix}` } }),
    [/metadata\.name must equal spec\.node/],
  ],
  [
    'report with a multicast endpoint MAC',
    () =>
      report(`n-${suffix}`, { endpoints: [{ endpointID: 1, network: 'blue', mac: '01:00:5e:00:00:01' }] }),
    [/spec\.endpoints\[0\]\.mac/, /unicast MAC/],
  ],
  [
    'report with a unicast group in a membership',
    () =>
      report(`n-${suffix}`, {
        memberships: [{ network: 'blue', group: '10.0.0.1', endpointID: 1 }],
      }),
    [/spec\.memberships\[0\]\.group/, /multicast IP address or a multicast MAC/],
  ],
  [
    'report with a bad filter mode',
    () =>
      report(`n-${suffix}`, {
        memberships: [{ network: 'blue', group: '239.1.1.1', endpointID: 1, filter: { mode: 'allow' } }],
      }),
    [/spec\.memberships\[0\]\.filter\.mode/, /supported values: "include", "exclude"/],
  ],
  [
    'VM address named after another VMI or network',
    () => vmaddr('db-1.blue', {}),
    [/metadata\.name must be <spec\.vmi>\.<spec\.network>/],
  ],
  [
    'VM address with a bad IP',
    () => vmaddr('db-0.blue', { ips: ['10.42.1.300'] }),
    [/spec\.ips\[0\]/, /spec\.ips must be unicast IP addresses/],
  ],
  [
    'VM address with no IP',
    () => vmaddr('db-0.blue', { ips: [] }),
    [/spec\.ips/, /should have at least 1 items/],
  ],
];

test.each(bad)('rejects %s, naming the field', async (_what, make, expected) => {
  const msg = await rejection(make());
  for (const re of expected) expect(msg).toMatch(re);
});

test('networkID is immutable', async () => {
  const name = `crd-imm-${suffix}`;
  await cluster.kubectl(['apply', '-f', '-'], {
    input: stringify({
      ...vnet(name, { networkID: 77, subnets: ['10.77.0.0/16'] }),
      metadata: { name, labels: { 'castnet-test': suffix } },
    }),
  });
  const err = await cluster
    .kubectl(['patch', 'vnet', name, '--type=merge', '-p', '{"spec":{"networkID":78}}'])
    .then(
      () => '',
      (e: Error) => e.message,
    );
  expect(err).toMatch(/spec\.networkID is immutable/);
});

test("a VM address's network and VMI are immutable, its addresses are not", async () => {
  await cluster.kubectl(['apply', '-f', '-'], { input: stringify(vmaddr('db-0.blue', {})) });
  await cluster.kubectl([
    '-n',
    ns,
    'patch',
    'vmaddr',
    'db-0.blue',
    '--type=merge',
    '-p',
    '{"spec":{"ips":["10.42.1.6"]}}',
  ]);
  const err = await cluster
    .kubectl(['-n', ns, 'patch', 'vmaddr', 'db-0.blue', '--type=merge', '-p', '{"spec":{"vmi":"db-1"}}'])
    .then(
      () => '',
      (e: Error) => e.message,
    );
  expect(err).toMatch(/spec\.vmi is immutable/);
  expect(await cluster.kubectl(['-n', ns, 'get', 'vmaddr'])).toMatch(/NAME\s+VMI\s+NETWORK\s+IPS\s+AGE/);
});
