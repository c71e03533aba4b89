// The directory the adapter builds from its caches, and how it tells whether its stored report drifted.
import { fromReport, type NodeDirectory } from './convert.js';
import type { MembershipReport } from '../../k8s/types.js';
import {
  buildDirectory,
  canonicalNodeDirectory,
  compactNodeDirectory,
  MAX_INTERNED,
} from './directory-cache.js';

const report = (node: string, endpoints: number[], joins: Array<[number, string]>): MembershipReport => ({
  metadata: { name: node },
  spec: {
    node,
    underlay: { address: '192.0.2.1', port: 4790 },
    poolIndex: 1,
    endpoints: endpoints.map((id) => ({
      endpointID: id,
      network: 'blue',
      mac: `02:00:00:00:00:0${id}`,
      ips: [`10.0.0.${id}`],
      pod: { namespace: 'ns', name: `p${id}`, uid: `u${id}` },
    })),
    memberships: joins.map(([id, group]) => ({ network: 'blue', group, endpointID: id })),
  },
});

describe('buildDirectory', () => {
  const a = fromReport(report('a', [1, 2], [[1, '239.1.1.1']]));
  const b = fromReport(report('b', [3], [[3, '239.1.1.1']]));

  it('flattens every node’s records', () => {
    const d = buildDirectory([], [], [a, b], {});
    expect(d.nodes.map((n) => n.name)).toEqual(['a', 'b']);
    expect(d.endpoints.map((e) => `${e.node}/${e.endpointId}`)).toEqual(['a/1', 'a/2', 'b/3']);
    expect(d.memberships.map((m) => `${m.node}/${m.endpointId}`)).toEqual(['a/1', 'b/3']);
  });

  it('takes this node’s part from its own state, and the stored report for what it never set', () => {
    const own = { node: { ...a.node, address: '192.0.2.9' }, memberships: [] };
    const d = buildDirectory([], [], [a, b], own);
    expect(d.nodes.find((n) => n.name === 'a')?.address).toBe('192.0.2.9');
    expect(d.memberships.map((m) => m.node)).toEqual(['b']);
    expect(d.endpoints.filter((e) => e.node === 'a')).toHaveLength(2);
  });
});

describe('canonicalNodeDirectory', () => {
  it('ignores list order and the order of object keys (the apiserver has its own)', () => {
    const x = fromReport(
      report(
        'a',
        [1, 2],
        [
          [1, '239.1.1.1'],
          [2, '239.2.2.2'],
        ],
      ),
    );
    const shuffled: NodeDirectory = {
      node: { poolIndex: 1, port: 4790, address: '192.0.2.1', name: 'a' },
      endpoints: [...x.endpoints]
        .reverse()
        .map((e) => ({ ...e, pod: { uid: e.pod!.uid, name: e.pod!.name, namespace: 'ns' } })),
      memberships: [...x.memberships].reverse(),
    };
    expect(canonicalNodeDirectory(shuffled)).toBe(canonicalNodeDirectory(x));
  });

  it('sees a changed membership', () => {
    const x = fromReport(report('a', [1], [[1, '239.1.1.1']]));
    const y = fromReport(report('a', [1], [[1, '239.1.1.2']]));
    expect(canonicalNodeDirectory(x)).not.toBe(canonicalNodeDirectory(y));
  });
});

describe('compactNodeDirectory', () => {
  it('shares repeated names, and keeps at most MAX_INTERNED however many groups pods join over time', () => {
    const strings = new Map<string, string>();
    const one = compactNodeDirectory(fromReport(report('a', [1], [[1, '239.1.1.1']])), strings);
    const two = compactNodeDirectory(fromReport(report('b', [2], [[2, '239.1.1.1']])), strings);
    expect(two.memberships[0]!.group).toBe(one.memberships[0]!.group);
    // Reports come and go with ever new group addresses (the pods' choice): the table stays bounded.
    for (let round = 0; round < 40; round++) {
      const joins = Array.from({ length: 2000 }, (_, i): [number, string] => [1, `ff3e::${round}:${i}`]);
      compactNodeDirectory(fromReport(report('a', [1], joins)), strings);
      expect(strings.size).toBeLessThanOrEqual(MAX_INTERNED);
    }
    const joins = Array.from({ length: 3 }, (_, i): [number, string] => [1, `239.9.9.${i}`]);
    expect(
      compactNodeDirectory(fromReport(report('a', [1], joins)), strings).memberships.map((m) => m.group),
    ).toEqual(['239.9.9.0', '239.9.9.1', '239.9.9.2']);
  });
});
