// Tenancy against real agents on a two-node lab (pkg/resolve/tenancy.ts, docs/security.md): tenant B
// may not attach to a network that allows only tenant A, cannot act there with a MulticastGroup,
// cannot take or black-hole an address tenant A already uses, and cannot make A's pods members of its
// groups. Every case fails on main before tenancy: the lab file's allowedNamespaces is refused there,
// and without it the ADD succeeds, B's allowedSenders and cycles black-hole A's address, and B's
// static members include A's pod.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, waitFor } from '../../pkg/base/async.js';
import { runIn } from '../../pkg/sys/exec.js';
import { useLab } from '../harness/lab-fixture.js';

const A_STREAM = '239.7.7.7';
const B_GROUP = '239.8.8.8';
const PRIVATE = '239.9.9.9';

// tenant-a's groups come first in the file: they are the older (the lab creates groups in order).
const LAB = `
nodes: 2
networks:
  - { name: shared, id: 300, subnets: [10.40.0.0/16] }
  - { name: private, id: 301, subnets: [10.41.0.0/16], allowedNamespaces: [tenant-a] }
pods:
  - { name: a1, node: 0, network: shared, namespace: tenant-a }
  - { name: a2, node: 1, network: shared, namespace: tenant-a }
  - { name: b1, node: 1, network: shared, namespace: tenant-b }
  - { name: b2, node: 0, network: shared, namespace: tenant-b }
  - { name: p1, node: 0, network: private, namespace: tenant-a }
  - { name: p2, node: 1, network: private, namespace: tenant-a }
  - { name: p3, node: 1, network: private, namespace: tenant-a }
groups:
  - { name: stream, namespace: tenant-a, network: shared, address: ${A_STREAM}, staticMembers: [a2] }
  # B claims A's address later: its members, its senders and a nesting cycle through it.
  - { name: grab, namespace: tenant-b, network: shared, address: ${A_STREAM}, staticMembers: [b1], allowedSenders: [b2] }
  - { name: loop, namespace: tenant-b, network: shared, address: ${A_STREAM}, staticMembers: [${B_GROUP}] }
  # B's own address, naming A's pod and its own.
  - { name: pull, namespace: tenant-b, network: shared, address: ${B_GROUP}, staticMembers: [a2, b1, ${A_STREAM}] }
  # B may not use the private network at all.
  - { name: sneak, namespace: tenant-b, network: private, address: ${PRIVATE}, staticMembers: [p3], allowedSenders: [10.41.255.1] }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`;

describe('tenancy on real agents', () => {
  const { lab } = useLab(LAB);
  beforeAll(async () => {
    // a2 is a static member and joins too: still exactly one copy.
    await lab().joinGroup('a2', A_STREAM);
    await lab().joinGroup('p2', PRIVATE);
  }, 60000);

  /** Waits until `pod` has `token` and returns how many copies it has. */
  const arrived = (pod: string, token: string): Promise<number> =>
    waitFor(() => lab().receivedBy(pod, token) || undefined, { what: `${token} at ${pod}` });

  it('refuses an ADD from a namespace the network does not allow, leaving nothing behind', async () => {
    const node = lab().topology.nodes[0]!;
    const links = async () => (await runIn(node.ns, 'ip', ['-o', 'link'])).stdout.trim().split('\n').length;
    const tableDir = join(lab().topology.dir, 'node-0', 'state', 'endpoints');
    const before = {
      links: await links(),
      table: readdirSync(tableDir).length,
      eps: lab().directory.endpoints.length,
    };
    await expect(lab().addLabPod('x1', 0, 'private', 'tenant-b')).rejects.toThrow(
      /"code": ?110.*VirtualNetwork \\"private\\" does not allow namespace \\"tenant-b\\": spec\.allowedNamespaces is \[tenant-a\]/s,
    );
    // Nothing half-done: no veth on the node or in the pod, no table entry (and so no IP), no record.
    expect(await links()).toBe(before.links);
    expect(readdirSync(tableDir)).toHaveLength(before.table);
    const podLinks = (await runIn(`${lab().topology.id}-p-x1`, 'ip', ['-o', 'link'])).stdout
      .trim()
      .split('\n');
    expect(podLinks).toHaveLength(1);
    expect(podLinks[0]).toContain(': lo:');
    await sleep(300);
    expect(lab().directory.endpoints).toHaveLength(before.eps);
    // The allowed namespace still attaches.
    await lab().addLabPod('x2', 0, 'private', 'tenant-a');
    expect(lab().podInfo('x2').ip).toMatch(/^10\.41\./);
  });

  it('a later group of tenant B neither takes nor black-holes tenant A’s address', async () => {
    const token = await lab().sendTo('a1', A_STREAM);
    // a2 (node 1) gets A's stream exactly once; b1 on the same node, in the same datagram's reach,
    // gets nothing, and neither does b2.
    expect(await arrived('a2', token)).toBe(1);
    await sleep(300);
    expect(lab().receivedBy('a2', token)).toBe(1);
    expect(lab().receivedBy('b1', token)).toBe(0);
    expect(lab().receivedBy('b2', token)).toBe(0);
  });

  it('a group of tenant B cannot make tenant A’s pod a member, nor reach A’s address through its own', async () => {
    const token = await lab().sendTo('b2', B_GROUP);
    // b1 (node 1, with a2) is B's own static member: the positive control.
    expect(await arrived('b1', token)).toBe(1);
    await sleep(300);
    expect(lab().receivedBy('a2', token)).toBe(0);
    expect(lab().receivedBy('a1', token)).toBe(0);
  });

  it('a group in a namespace the network does not allow acts on nothing', async () => {
    const token = await lab().sendTo('p1', PRIVATE);
    // Its allowedSenders would refuse p1; its static member p3 would receive.
    expect(await arrived('p2', token)).toBe(1);
    await sleep(300);
    expect(lab().receivedBy('p2', token)).toBe(1);
    expect(lab().receivedBy('p3', token)).toBe(0);
  });
});
