// The send and receive paths end to end, in pure logic: a frame from an endpoint is resolved,
// partitioned, encapsulated (split when the ID list is long), decoded on each receiving node against
// that node's own index, and delivered. Every member must get the frame exactly once, unchanged.
import fc from 'fast-check';
import { buildIPv4Frame, IPPROTO_UDP, parseFrame } from '../frame/index.js';
import type { Directory, EndpointRecord, MembershipRecord } from '../lookup/port.js';
import { decodeData, encapsulate, makeWireKey, udpPayloadBudget } from '../wire/index.js';
import { buildIndex, receiveTargets, Resolver } from './index.js';

const key = makeWireKey(Buffer.alloc(32, 3));
const NODES = ['n1', 'n2', 'n3'];

const scenario = fc.record({
  hosts: fc.uniqueArray(
    fc.record({
      network: fc.constantFrom('red', 'blue'),
      host: fc.integer({ min: 1, max: 200 }),
      node: fc.constantFrom(...NODES),
    }),
    {
      selector: (h) => `${h.network}/${h.host}`,
      minLength: 1,
      maxLength: 60,
    },
  ),
  joins: fc.array(
    fc.record({
      pick: fc.nat(),
      mode: fc.constantFrom('include' as const, 'exclude' as const),
      listsSender: fc.boolean(),
    }),
    { maxLength: 60 },
  ),
  senderPick: fc.nat(),
  broadcast: fc.boolean(),
  payload: fc.integer({ min: 0, max: 1400 }),
  underlayMtu: fc.constantFrom(1500, 1600),
});

it('every member receives each frame exactly once and unchanged; nobody else receives it', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const endpoints: EndpointRecord[] = s.hosts.map((h) => ({
        network: h.network,
        node: h.node,
        endpointId: (h.network === 'red' ? 1000 : 2000) + h.host,
        mac: `02:00:00:${h.network === 'red' ? '01' : '02'}:00:${h.host.toString(16).padStart(2, '0')}`,
        ips: [`10.0.0.${h.host}`],
      }));
      const sender = endpoints[s.senderPick % endpoints.length];
      const source = sender.ips[0];
      const memberships: MembershipRecord[] = s.joins.map((j) => {
        const e = endpoints[j.pick % endpoints.length];
        return {
          network: e.network,
          group: '239.5.5.5',
          node: e.node,
          endpointId: e.endpointId,
          filter: { mode: j.mode, sources: j.listsSender ? [source] : [] },
        };
      });
      const d: Directory = {
        networks: [
          { name: 'red', id: 1, subnets: ['10.0.0.0/24'], mtu: 1400, multicast: true, broadcast: true },
          { name: 'blue', id: 2, subnets: ['10.0.0.0/24'], mtu: 1400, multicast: true, broadcast: true },
        ],
        nodes: NODES.map((name, i) => ({ name, address: `192.0.2.${i + 1}`, port: 4790, poolIndex: i })),
        endpoints,
        groups: [],
        memberships,
      };
      const indexes = new Map(NODES.map((n) => [n, buildIndex(d, n)]));
      const home = indexes.get(sender.node)!;
      const frame = buildIPv4Frame({
        dstMac: s.broadcast ? 'ff:ff:ff:ff:ff:ff' : '01:00:5e:05:05:05',
        srcMac: sender.mac,
        src: source,
        dst: s.broadcast ? '10.0.0.255' : '239.5.5.5',
        protocol: IPPROTO_UDP,
        ttl: 1,
        payload: new Uint8Array(s.payload).fill(0xab),
      });
      const parsed = parseFrame(frame);
      if (!parsed.ok) throw new Error(parsed.error.reason);
      const r = new Resolver(home).resolveFrame(home.localEndpoint(sender.endpointId)!, parsed.value, frame);
      if (!r.ok) throw new Error(r.error.reason);

      const delivered: string[] = r.value.local.map((id) => `${sender.node}/${id}`);
      for (const batch of r.value.remote) {
        const network = sender.network === 'red' ? 1 : 2;
        const datagrams = encapsulate(
          {
            networkId: network,
            sourceEndpointId: sender.endpointId,
            destinations: [...batch.endpointIds],
            vnetHeader: false,
            frame,
          },
          udpPayloadBudget(s.underlayMtu, 4),
          key,
        );
        if (!datagrams.ok) throw new Error(datagrams.error.reason);
        for (const dg of datagrams.value) {
          expect(dg.length).toBeLessThanOrEqual(udpPayloadBudget(s.underlayMtu, 4));
          const m = decodeData(dg, [key]);
          if (!m.ok) throw new Error(m.error.reason);
          expect(Buffer.from(m.value.frame).equals(Buffer.from(frame))).toBe(true);
          const t = receiveTargets(indexes.get(batch.node.name)!, m.value.networkId, m.value.destinations);
          expect(t.unknownIds + t.duplicateIds).toBe(0);
          delivered.push(...t.deliver.map((e) => `${e.node}/${e.endpointId}`));
        }
      }

      const same = endpoints.filter((e) => e.network === sender.network && e !== sender);
      const want = s.broadcast
        ? same
        : same.filter((e) =>
            memberships.some(
              (m) =>
                m.node === e.node &&
                m.endpointId === e.endpointId &&
                (m.filter.mode === 'include'
                  ? m.filter.sources.includes(source)
                  : !m.filter.sources.includes(source)),
            ),
          );
      expect(delivered.sort()).toEqual(want.map((e) => `${e.node}/${e.endpointId}`).sort());
    }),
    { numRuns: 300 },
  );
});
