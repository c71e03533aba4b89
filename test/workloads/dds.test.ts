// Eclipse Cyclone DDS (issue scenario 4) on castnet: participants on three nodes find each other by
// SPDP multicast alone (no peers configured), and a reliable topic carries 10,000 samples from the
// writer on one node to readers on the two others, each getting every sample exactly once, in order
// and intact. Participants of another tenant's network, on the same DDS domain and so the same
// SPDP group, find each other and never anyone of blue. The participants are the real Cyclone DDS (its Python binding from PyPI, ./cyclonedds.ts).
import { waitFor } from '../../pkg/base/async.js';
import { useLab } from '../harness/lab-fixture.js';
import { inNetns } from '../harness/where.js';
import {
  awaitEvent,
  ddsParticipant,
  discovered,
  discoversExactly,
  discoveryTimes,
  everySampleOnce,
} from './cyclonedds.js';

const SAMPLES = 10_000;
const DOMAIN = 0;
/** SPDP's multicast address for the default domain. */
const SPDP_GROUP = '239.255.0.1';

const { lab, pod, own } = useLab(`
nodes: 3
networks:
  - { name: blue, id: 83, subnets: [10.83.0.0/16] }
  - { name: red, id: 84, subnets: [10.84.0.0/16] }
pods:
  - { name: w, node: 0, network: blue }
  - { name: r1, node: 1, network: blue }
  - { name: r2, node: 2, network: blue }
  - { name: p1, node: 1, network: red }
  - { name: p2, node: 2, network: red }
scenarios:
  - name: wired
    steps:
      - ping: { from: w, to: r2 }
`);

it('discovers participants on three nodes by SPDP multicast and delivers 10,000 reliable samples to two nodes', async () => {
  const opts = { domain: DOMAIN, readers: 2, samples: SAMPLES };
  const writer = own(ddsParticipant('DDS writer on w', inNetns(pod('w').ns), 'writer', opts));
  const readers = ['r1', 'r2'].map((p) =>
    own(ddsParticipant(`DDS reader on ${p}`, inNetns(pod(p).ns), 'reader', opts)),
  );
  const participants = [writer, ...readers];
  const red = ['p1', 'p2'].map((p) =>
    own(ddsParticipant(`DDS peer on ${p} (red)`, inNetns(pod(p).ns), 'peer', opts)),
  );
  for (const p of [...participants, ...red]) p.start();

  // Discovery: every participant learns the GUIDs of the others of its network, and nothing else.
  const guids = await Promise.all(
    participants.map(async (p) => (await awaitEvent(p, 'participant')).guid as string),
  );
  const redGuids = await Promise.all(
    red.map(async (p) => (await awaitEvent(p, 'participant')).guid as string),
  );
  for (const [i, p] of red.entries()) await discoversExactly(p, [redGuids[1 - i]!]);
  for (const [i, p] of participants.entries())
    await discoversExactly(
      p,
      guids.filter((_, j) => j !== i),
    );
  const discovery = discoveryTimes(participants, ['w', 'r1', 'r2']);
  // The pods' kernels joined SPDP's group (IGMP), and castnet's directory lists all three (an
  // endpoint ID is its node's).
  const pods = ['w', 'r1', 'r2'].map((p) => `node-${pod(p).node}/${pod(p).endpointId}`);
  const spdpMembers = () =>
    lab()
      .directory.memberships.filter((m) => m.group === SPDP_GROUP && m.network === pod('w').network)
      .map((m) => `${m.node}/${m.endpointId}`)
      .sort();
  await waitFor(() => spdpMembers().length >= 3, { what: `three members of ${SPDP_GROUP}` });
  expect(spdpMembers()).toEqual(pods.sort());

  // Delivery: the writer writes once both readers matched, then waits for their acknowledgements.
  const matched = await awaitEvent(writer, 'matched');
  const written = await awaitEvent(writer, 'written', 120_000);
  const acked = await awaitEvent(writer, 'acked', 120_000);
  expect(acked.ok).toBe(true);
  for (const r of readers) r.closeInput();
  const received = await Promise.all(readers.map((r) => awaitEvent(r, 'received')));
  for (const got of received) everySampleOnce(got, SAMPLES);

  // After the whole run (periodic SPDP included), still nobody across the networks.
  for (const [i, p] of participants.entries())
    expect(discovered(p)).toEqual(guids.filter((_, j) => j !== i).sort());
  for (const [i, p] of red.entries()) expect(discovered(p)).toEqual([redGuids[1 - i]]);

  const delivery = received.map((got, i) => ({
    reader: ['r1', 'r2'][i],
    // From the first write to the reader taking the last sample.
    ms: Math.round((got.lastAt as number) - matched.at),
    samplesPerSecond: Math.round(SAMPLES / (((got.lastAt as number) - matched.at) / 1000)),
  }));
  console.log(
    `Cyclone DDS: discovery (ms, observer->participant): ${JSON.stringify(discovery)}; ` +
      `${SAMPLES} reliable samples written in ${Math.round(written.at - matched.at)} ms, ` +
      `acknowledged by both readers after ${Math.round(acked.at - matched.at)} ms; ` +
      `delivery: ${JSON.stringify(delivery)}`,
  );
}, 300_000);
