// mDNS with the real avahi-daemon (issue scenario 2): what users of mDNS expect across castnet's
// nodes. A service published on one node resolves on every other node (avahi-browse -rt); a host
// name two nodes claim is defended by the first and the second daemon renames itself, both names
// resolving; another tenant's network sees none of it, and may use the same names. Each pod runs
// its own avahi-daemon with its own D-Bus bus (./avahi.ts). mDNS is link-local multicast
// (224.0.0.251): castnet's data plane floods it to every endpoint of the network, across nodes.
import { useLab } from '../harness/lab-fixture.js';
import { inNetns } from '../harness/where.js';
import { AvahiPod, publishAndResolve, resolvedAs, type Service } from './avahi.js';

const TYPE = '_castnet-probe._tcp';

// Three nodes; blue (the tenant under test) has a pod on each, red a pod on nodes 1 and 2.
const lab = useLab(
  `
nodes: 3
networks:
  - { name: blue, id: 81, subnets: [10.81.0.0/16] }
  - { name: red, id: 82, subnets: [10.82.0.0/16] }
pods:
  - { name: a, node: 0, network: blue }
  - { name: b, node: 1, network: blue }
  - { name: c, node: 2, network: blue }
  - { name: x, node: 1, network: red }
  - { name: y, node: 2, network: red }
scenarios:
  - name: wired
    steps:
      - ping: { from: a, to: c }
`,
  { stopTimeoutMs: 120_000 },
);
const avahi = new Map<string, AvahiPod>();
/** The host name each pod's daemon settled on at start-up. */
const settled = new Map<string, string>();

function pod(name: string): AvahiPod {
  const p = avahi.get(name);
  if (!p) throw new Error(`no avahi pod ${name}`);
  return p;
}

async function startAvahi(name: string, hostName: string): Promise<void> {
  const p = lab.own(new AvahiPod(name, inNetns(lab.pod(name).ns), hostName));
  avahi.set(name, p);
  settled.set(name, await p.start());
}

const service = (name: string, pod: string): Service => ({
  name,
  type: TYPE,
  port: 7000,
  txt: [`pod=${pod}`, 'path=/'],
});
beforeAll(async () => {
  // b claims "bravo" before c, which is configured with the same name; x (red) claims "alpha",
  // as blue's a does: a different network, so no conflict.
  await startAvahi('a', 'alpha');
  await startAvahi('b', 'bravo');
  await startAvahi('c', 'bravo');
  await startAvahi('x', 'alpha');
  await startAvahi('y', 'yankee');
}, 180_000);

it('resolves a service published on one node on every other node', async () => {
  const blue = service('blue-probe', 'a');
  const times = await publishAndResolve(
    pod('a'),
    [pod('b'), pod('c')],
    blue,
    resolvedAs(blue, 'alpha.local', lab.pod('a').ip),
  );
  // The bar is 2 s from publishing to resolution on every other node.
  console.log(`mDNS discovery (ms after the service file was written): ${JSON.stringify(times)}`);
}, 120_000);

it('resolves a host-name conflict between two nodes: the second daemon renames itself', async () => {
  // b held "bravo" first and kept it; c, configured with the same name, was refused it on the
  // network and took "bravo-2".
  expect(settled.get('b')).toBe('bravo');
  expect(settled.get('c')).toBe('bravo-2');
  await pod('c').daemon.waitForLine(/Host name conflict, retrying with bravo-2/, 'the conflict');
  expect(pod('b').daemon.output()).not.toMatch(/conflict/i);
  // Both names resolve, from the third node, to their own holders.
  expect(await pod('a').resolveHost('bravo.local')).toBe(lab.pod('b').ip);
  expect(await pod('a').resolveHost('bravo-2.local')).toBe(lab.pod('c').ip);
}, 120_000);

it("keeps another tenant's network apart: it sees nothing of blue and may use the same names", async () => {
  const red = service('red-probe', 'x');
  pod('x').publish(red);
  await pod('x').daemon.waitForLine(/Service "red-probe" .* successfully established/, 'red-probe');
  // x claimed "alpha" as blue's a did, on a network of its own: no conflict, on either side.
  expect(settled.get('x')).toBe('alpha');
  expect(settled.get('a')).toBe('alpha');
  for (const name of ['a', 'x']) expect(pod(name).daemon.output()).not.toMatch(/conflict/i);

  // Each browse finds its own network's service (the positive control: the browse works across
  // nodes) and nothing of the other's, whose service is published too (the first test).
  expect(await pod('y').browseOnce(TYPE)).toEqual([resolvedAs(red, 'alpha.local', lab.pod('x').ip)]);
  const blueSeen = (await pod('b').browseOnce(TYPE)).map((r) => r.name);
  expect(blueSeen).toEqual(['blue-probe']);
  // "alpha" is x in red, a in blue; red does not know blue's names at all.
  expect(await pod('y').resolveHost('alpha.local')).toBe(lab.pod('x').ip);
  expect(await pod('c').resolveHost('alpha.local')).toBe(lab.pod('a').ip);
  expect(await pod('y').resolveHost('bravo.local')).toBeUndefined();
}, 120_000);
