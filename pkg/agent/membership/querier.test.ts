// The querier with real parts: a real endpoint table (in a temporary state dir) and the real
// embedded lookup service on a unix socket. Query frames are parsed back from what it injects.
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EndpointTable, type Endpoint } from '../../endpoint/table.js';
import { parseFrame } from '../../frame/ethernet.js';
import { createLogger } from '../../log/log.js';
import { EmbeddedLookupClient } from '../../lookup/embedded/client.js';
import { EmbeddedLookupServer } from '../../lookup/embedded/server.js';
import type { NetworkSpec } from '../../lookup/port.js';
import { DirectoryStore } from '../../lookup/store.js';
import { networkMembershipConfig, Querier } from './querier.js';

const net = (name: string, querier?: NetworkSpec['querier']): NetworkSpec => ({
  name,
  id: name === 'fast' ? 7 : 8,
  subnets: ['10.7.0.0/16'],
  mtu: 1400,
  multicast: true,
  broadcast: true,
  ...(querier ? { querier } : {}),
});

/** QRV and QQIC of an IGMPv3 query frame. */
function queryFields(frame: Uint8Array): { qrv: number; qqic: number } {
  const f = parseFrame(frame);
  if (!f.ok || !f.value.ip) throw new Error('not an IP frame');
  const p = f.value.ip.payloadOffset;
  return { qrv: frame[p + 8]! & 7, qqic: frame[p + 9]! };
}

/**
 * When a querier that starts at `start` sends general queries, up to `until`, per RFC 9776 8.6/8.7:
 * Startup Query Count (= robustness) queries a Startup Query Interval (QI/4) apart, then one every QI.
 */
function queryTimes(start: number, qi: number, robustness: number, until: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < robustness; i++) times.push(start + (i * qi) / 4);
  for (let t = times.at(-1)! + qi; t <= until; t += qi) times.push(t);
  return times.filter((t) => t <= until);
}

describe('network querier settings', () => {
  it('take the VirtualNetwork over the agent, keeping the response interval below the query interval', () => {
    expect(networkMembershipConfig({ fastLeave: true }, net('slow'))).toEqual({ fastLeave: true });
    expect(
      networkMembershipConfig(
        {},
        net('fast', { queryIntervalSeconds: 5, robustness: 3, maxGroupsPerEndpoint: 9 }),
      ),
    ).toEqual({
      queryIntervalMs: 5000,
      robustness: 3,
      maxGroupsPerEndpoint: 9,
      queryResponseIntervalMs: 2500,
    });
  });

  it("query each link with its network's interval and robustness, and survive a change of them", async () => {
    // Time is jest's fake clock: the test checks when each query goes out, not only what it says.
    jest.useFakeTimers({ now: 0, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const dir = mkdtempSync(join(tmpdir(), 'castnet-querier-'));
    const store = new DirectoryStore();
    const server = new EmbeddedLookupServer(store, join(dir, 'lookup.sock'));
    await server.listen();
    const lookup = new EmbeddedLookupClient(join(dir, 'lookup.sock'));
    const table = EndpointTable.load(join(dir, 'state'));
    const injected: { id: number; at: number; frame: Uint8Array }[] = [];
    const ep = (id: number, network: string): Endpoint => ({
      containerId: `c${id}`,
      ifname: 'eth0',
      endpointId: id,
      state: 'ready',
      network,
      netns: '/nonexistent',
      hostIfname: `cnq${id}`,
      hostIfindex: 100 + id,
      mac: `02:00:00:00:00:0${id}`,
      mtu: 1400,
      ips: [`10.7.0.${id}/16`],
      ipam: { type: 'castnet' },
      createdAt: new Date().toISOString(),
    });
    table.put(ep(1, 'fast'));
    table.put(ep(2, 'slow'));
    const q = new Querier({
      node: 'n1',
      endpoints: table,
      lookup,
      inject: (id, frame) => injected.push({ id, at: Date.now(), frame }),
      onRecords: () => undefined,
      log: createLogger('test', () => undefined),
    });
    q.start();
    const sent = (id: number) => injected.filter((i) => i.id === id);
    try {
      // Before the networks are known, both links get the agent's defaults (QQIC 125, QRV 2).
      expect(injected.map((i) => [i.id, queryFields(i.frame)])).toEqual([
        [1, { qrv: 2, qqic: 125 }],
        [2, { qrv: 2, qqic: 125 }],
      ]);
      jest.advanceTimersByTime(10_000);
      injected.length = 0;
      q.setNetworks([net('fast', { queryIntervalSeconds: 5, robustness: 3 }), net('slow')]);
      // Only the network whose settings changed starts over, with its own settings.
      expect(injected.map((i) => [i.id, queryFields(i.frame)])).toEqual([[1, { qrv: 3, qqic: 5 }]]);
      q.setNetworks([net('fast', { queryIntervalSeconds: 5, robustness: 3 }), net('slow')]);
      expect(injected).toHaveLength(1);

      jest.advanceTimersByTime(200_000 - 10_000);
      // fast restarted at 10 s with QI 5 s and RV 3; slow started at 0 with the defaults QI 125 s, RV 2.
      expect(sent(1).map((i) => i.at)).toEqual(queryTimes(10_000, 5_000, 3, 200_000));
      expect(sent(1).every((i) => queryFields(i.frame).qqic === 5)).toBe(true);
      expect(sent(2).map((i) => i.at)).toEqual(queryTimes(0, 125_000, 2, 200_000).filter((t) => t >= 10_000));
      expect(sent(2).every((i) => queryFields(i.frame).qqic === 125)).toBe(true);
    } finally {
      jest.useRealTimers();
      q.dispose();
      await lookup.dispose();
      await server.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
