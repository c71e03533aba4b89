// The authenticated underlay (wire format version 2, the default) under attack, on a real two-node
// lab: a forged datagram from a non-node spoofing a node's address, a third node (registered, with
// its own key, as a compromised node would be) forging as node 0 to node 1, a replayed captured
// datagram, a key epoch past its rotation grace period, and an unauthenticated version 1 datagram
// from a peer that advertises version 2. None may deliver anything; each is counted by reason; good
// traffic keeps flowing, across a key rotation too. On main before version 2, every one of them
// is delivered (an unauthenticated datagram from a node's address is accepted) except the third
// node's, which main drops as unknown-sender only because it does not know the key at all.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { EmbeddedLookupClient } from '../../pkg/lookup/embedded/client.js';
import type { NodeRecord } from '../../pkg/lookup/port.js';
import { Lab } from '../../pkg/lab/runner.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import { UNDERLAY_PORT } from '../../pkg/lab/topology.js';
import { run } from '../../pkg/sys/exec.js';
import {
  derivePairKeys,
  encodeData,
  generateNodeKeyPair,
  parsePublicKey,
  SipKey,
  type DataMessage,
  type NodeKeyPair,
  type PairSeal,
} from '../../pkg/wire/index.js';
import { waitFor } from '../../pkg/base/async.js';
import {
  addUnderlayHost,
  arrived,
  capturedDatagrams,
  drops,
  sendDatagrams,
  groupFrame,
  withVnet,
} from '../harness/underlay.js';

const root = join(import.meta.dirname, '../..');
const GROUP = '239.6.6.6';
const GRACE_S = 4;
const EVIL = { name: 'node-evil', address: '198.18.0.98' };

const labFile = parseLabFile(`
nodes: 2
networks:
  - { name: blue, id: 100, subnets: [10.32.0.0/16] }
pods:
  - { name: a1, node: 0, network: blue }
  - { name: b1, node: 1, network: blue }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`);

let lab: Lab;
let evilNs: string;
let evilKey: NodeKeyPair;
let lookup: EmbeddedLookupClient;

const node = (i: number): NodeRecord =>
  lab.directory.nodes.find((n) => n.name === lab.topology.nodes[i]!.name)!;

/** The evil node's record, as it publishes it itself through the lookup service (the real API). */
async function publishEvil(key: NodeKeyPair): Promise<void> {
  await lookup.registerNode({
    name: EVIL.name,
    address: EVIL.address,
    port: UNDERLAY_PORT,
    poolIndex: 9,
    wireVersion: 2,
    wireKey: { epoch: key.epoch, publicKey: key.publicKey.toString('base64') },
  });
}

/** A datagram for b1 from a1's endpoint, carrying `token`. */
function message(token: string): DataMessage {
  const a1 = lab.podInfo('a1');
  return {
    networkId: 100,
    sourceEndpointId: a1.endpointId,
    destinations: [lab.podInfo('b1').endpointId],
    vnetHeader: true,
    frame: withVnet(groupFrame(GROUP, a1, token)),
  };
}

let evilSeq = 1;
/** The evil node's seal to node 1 under its key `key`: what its own agent would legitimately send. */
function evilSeal(key: NodeKeyPair, overrides: Partial<PairSeal> = {}): PairSeal {
  const n1 = node(1);
  const theirs = { epoch: n1.wireKey!.epoch, publicKey: parsePublicKey(n1.wireKey!.publicKey) as Buffer };
  const k = derivePairKeys(EVIL.name, key, n1.name, theirs);
  return {
    key: k.tx,
    senderEpoch: key.epoch,
    receiverEpoch: theirs.epoch,
    nextSeq: () => evilSeq++,
    ...overrides,
  };
}

const fromEvil = (datagrams: Uint8Array[]) =>
  sendDatagrams(evilNs, EVIL.address, lab.topology.nodes[1]!.address, datagrams);
const fromNode0Address = (ns: string, datagrams: Uint8Array[]) =>
  sendDatagrams(ns, lab.topology.nodes[0]!.address, lab.topology.nodes[1]!.address, datagrams);

/** Waits until node 1 counted `n` more drops of `reason` than in `before`. */
async function counted(before: Record<string, number>, reason: string, n = 1): Promise<void> {
  await waitFor(async () => ((await drops(lab, 1))[reason] ?? 0) >= (before[reason] ?? 0) + n, {
    what: `${n} more ${reason} drops on node 1`,
  });
  expect((await drops(lab, 1))[reason]).toBe((before[reason] ?? 0) + n);
}

/** Good traffic from a1 reaches b1 exactly once, sealed (positive control after each case). */
async function stillDelivers(): Promise<void> {
  const token = await lab.sendTo('a1', GROUP);
  expect(await arrived(lab, 'b1', token)).toBe(1);
}

beforeAll(async () => {
  lab = new Lab(labFile, {
    castnetBin: join(root, 'bin/castnet'),
    cniBin: join(root, 'bin/castnet-cni'),
    agentArgs: ['--key-grace', String(GRACE_S)],
  });
  await lab.start();
  await lab.joinGroup('b1', GROUP);
  evilNs = await addUnderlayHost(lab, 'e', EVIL.address);
  lookup = new EmbeddedLookupClient(join(lab.topology.dir, 'lookup.sock'));
  evilKey = generateNodeKeyPair(1000);
  await publishEvil(evilKey);
}, 120000);

afterAll(async () => {
  await lookup?.dispose();
  if (evilNs) await run('ip', ['netns', 'del', evilNs]).catch(() => undefined);
  await lab?.dispose();
}, 60000);

it('publishes each node key and seals node-to-node traffic with pair keys (the harness works)', async () => {
  for (const i of [0, 1]) {
    expect(node(i).wireVersion).toBe(2);
    expect(parsePublicKey(node(i).wireKey!.publicKey)).toBeInstanceOf(Buffer);
  }
  const before = (await lab.agentStats(1)) as { dataplane: { datagramsAuthenticated: number } };
  await stillDelivers();
  const after = (await lab.agentStats(1)) as typeof before;
  expect(after.dataplane.datagramsAuthenticated).toBeGreaterThan(before.dataplane.datagramsAuthenticated);
  // The evil node is a registered node with a valid key: its own sealed datagrams are delivered
  // (this proves the test's sealing, so the refusals below are the agents' doing).
  const token = `evil-own-${randomBytes(4).toString('hex')}`;
  await waitFor(
    async () => {
      await fromEvil([encodeData(message(token), evilSeal(evilKey))]);
      return lab.receivedBy('b1', token) > 0;
    },
    { what: "node 1 to hear the evil node's own key" },
  );
});

// The forged datagrams below leave from node 0's namespace with a raw socket: on the wire they are
// what a host spoofing node 0's address sends (the underlay does not stop spoofing), without taking
// node 0's address away from it.
const n0ns = () => lab.topology.nodes[0]!.ns;

it('drops a forged datagram from a non-node spoofing node 0 (no key: the tag does not verify)', async () => {
  const token = `forged-${randomBytes(4).toString('hex')}`;
  const guess: PairSeal = {
    key: new SipKey(randomBytes(16)),
    senderEpoch: node(0).wireKey!.epoch,
    receiverEpoch: node(1).wireKey!.epoch,
    nextSeq: () => 1,
  };
  const before = await drops(lab, 1);
  await fromNode0Address(n0ns(), [encodeData(message(token), guess)]);
  await counted(before, 'bad-datagram:bad-tag');
  expect(lab.receivedBy('b1', token)).toBe(0);
  await stillDelivers();
});

it("drops a third node's datagram sealed with its own pair key but sent as node 0", async () => {
  const token = `as-node0-${randomBytes(4).toString('hex')}`;
  const before = await drops(lab, 1);
  // The evil node owns a valid pair key with node 1; it names node 0's epoch and address.
  const forged = encodeData(message(token), evilSeal(evilKey, { senderEpoch: node(0).wireKey!.epoch }));
  await fromNode0Address(n0ns(), [forged]);
  await counted(before, 'bad-datagram:bad-tag');
  expect(lab.receivedBy('b1', token)).toBe(0);
  await stillDelivers();
});

it('drops a replayed datagram captured on the underlay', async () => {
  const token = await lab.sendTo('a1', GROUP);
  expect(await arrived(lab, 'b1', token)).toBe(1);
  const [captured] = await waitFor(
    () => capturedDatagrams(lab, token).length > 0 && capturedDatagrams(lab, token),
    {
      what: 'the datagram in the underlay capture',
    },
  );
  expect(captured![2]).toBe(2); // version 2 on the wire
  const before = await drops(lab, 1);
  await fromNode0Address(n0ns(), [captured!, captured!]);
  await counted(before, 'replayed', 2);
  expect(lab.receivedBy('b1', token)).toBe(1);
  await stillDelivers();
});

it('drops an unauthenticated version 1 datagram from a node that advertises version 2', async () => {
  const token = `v1-${randomBytes(4).toString('hex')}`;
  const before = await drops(lab, 1);
  await fromNode0Address(n0ns(), [encodeData(message(token))]);
  await counted(before, 'v1-from-v2-peer');
  expect(lab.receivedBy('b1', token)).toBe(0);
  await stillDelivers();
});

it('accepts a replaced key during its grace period and refuses its epoch after it', async () => {
  const old = evilKey;
  evilKey = generateNodeKeyPair(old.epoch + 1);
  await publishEvil(evilKey);
  const t = randomBytes(4).toString('hex');
  // Node 1 follows the rotation: the new key is heard...
  await waitFor(
    async () => {
      await fromEvil([encodeData(message(`new-${t}`), evilSeal(evilKey))]);
      return lab.receivedBy('b1', `new-${t}`) > 0;
    },
    { what: "node 1 to hear the evil node's new key" },
  );
  // ...and the old one still, within the grace period (a fresh sequence number: no replay).
  await fromEvil([encodeData(message(`old-in-grace-${t}`), evilSeal(old))]);
  expect(await arrived(lab, 'b1', `old-in-grace-${t}`)).toBe(1);
  await new Promise((r) => setTimeout(r, GRACE_S * 1000 + 500));
  const before = await drops(lab, 1);
  await fromEvil([encodeData(message(`old-after-grace-${t}`), evilSeal(old))]);
  await counted(before, 'bad-datagram:stale-key');
  expect(lab.receivedBy('b1', `old-after-grace-${t}`)).toBe(0);
  await stillDelivers();
});

it('rotates an agent key on SIGHUP without a restart: no loss, no duplicate, the old epoch refused after the grace', async () => {
  const epoch = node(0).wireKey!.epoch;
  const before = await lab.sendTo('a1', GROUP);
  expect(await arrived(lab, 'b1', before)).toBe(1);
  const [captured] = await waitFor(
    () => capturedDatagrams(lab, before).length > 0 && capturedDatagrams(lab, before),
    {
      what: 'a datagram under the old epoch in the underlay capture',
    },
  );
  lab.signalAgent(0, 'SIGHUP');
  await waitFor(() => node(0).wireKey!.epoch > epoch, { what: "node 0's new key in the directory" });
  // Traffic both ways across the switch: every message exactly once.
  const tokens: string[] = [];
  for (let i = 0; i < 20; i++) {
    tokens.push(await lab.sendTo('a1', GROUP));
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const token of tokens) expect(await arrived(lab, 'b1', token)).toBe(1);
  // Node 0 now seals with its new key.
  const fresh = await lab.sendTo('a1', GROUP);
  expect(await arrived(lab, 'b1', fresh)).toBe(1);
  const [now] = await waitFor(
    () => capturedDatagrams(lab, fresh).length > 0 && capturedDatagrams(lab, fresh),
    {
      what: 'a datagram under the new epoch',
    },
  );
  expect(now!.readUInt32BE(16)).toBe(node(0).wireKey!.epoch);
  // After the grace period the old epoch is gone: the captured datagram is refused as stale.
  await new Promise((r) => setTimeout(r, GRACE_S * 1000 + 500));
  const d = await drops(lab, 1);
  await fromNode0Address(n0ns(), [captured!]);
  await counted(d, 'bad-datagram:stale-key');
  expect(lab.receivedBy('b1', before)).toBe(1);
  await stillDelivers();
});
