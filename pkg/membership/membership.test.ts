import fc from 'fast-check';
import { parseFrame } from '../frame/index.js';
import type { GroupRecord, IgmpReport } from '../igmp/parse.js';
import {
  igmpFrame,
  igmpV2Body,
  igmpV3ReportBody,
  mldFrame,
  mldV2ReportBody,
} from '../../test/fixtures/igmp-reports.js';
import type { MembershipRecord } from '../lookup/port.js';
import { isGroupAddress } from '../resolve/groups.js';
import { MembershipTable, TokenBucket, type MembershipConfig } from './index.js';

const EP = { network: 'red', endpointId: 7 };
const G = '239.1.1.1';
const v3 = (...records: GroupRecord[]): IgmpReport => ({
  kind: 'report',
  protocol: 'igmp',
  compat: 3,
  records,
  ignoredRecords: 0,
});
const v2 = (type: 'IS_EX' | 'TO_IN', group = G): IgmpReport => ({
  kind: 'report',
  protocol: 'igmp',
  compat: 2,
  records: [{ type, group, sources: [] }],
  ignoredRecords: 0,
});
const rec = (type: GroupRecord['type'], sources: string[] = [], group = G): GroupRecord => ({
  type,
  group,
  sources,
});

function table(config: Partial<MembershipConfig> = {}) {
  const t = new MembershipTable('n1', config);
  t.addEndpoint(EP, 0);
  return t;
}

const filters = (t: MembershipTable) =>
  t.records().map((r) => `${r.group} ${r.filter.mode} [${r.filter.sources.join(',')}]`);

describe('membership timers and leaves', () => {
  it('a join is published, notified, and expires after the membership interval (260 s) without refresh', () => {
    const t = table();
    const seen: MembershipRecord[][] = [];
    t.onChange((r) => seen.push(r));
    expect(t.groupMembershipIntervalMs).toBe(260_000);
    const out = t.handleReport(7, v3(rec('TO_EX')), 1000);
    expect(out.changed).toBe(true);
    expect(t.records()).toEqual([
      { network: 'red', group: G, node: 'n1', endpointId: 7, filter: { mode: 'exclude', sources: [] } },
    ]);
    expect(seen).toHaveLength(1);
    t.tick(260_999);
    expect(filters(t)).toEqual([`${G} exclude []`]);
    const gone = t.tick(261_000);
    expect(gone.changed).toBe(true);
    expect(t.records()).toEqual([]);
    expect(seen.at(-1)).toEqual([]);
  });

  it('a report answering a general query refreshes the membership', () => {
    const t = table();
    t.handleReport(7, v3(rec('TO_EX')), 0);
    t.handleReport(7, v3(rec('IS_EX')), 200_000);
    t.tick(300_000);
    expect(filters(t)).toEqual([`${G} exclude []`]);
    t.tick(460_000);
    expect(filters(t)).toEqual([]);
  });

  it('a leave triggers last-member queries (robustness of them, 1 s apart) and removal after LMQT', () => {
    const t = table();
    t.handleReport(7, v3(rec('TO_EX')), 0);
    const leave = t.handleReport(7, v3(rec('TO_IN')), 10_000);
    expect(leave.changed).toBe(false);
    expect(leave.queries).toEqual([
      { ...EP, group: G, sources: [], mld: false, maxResponseMs: 1000, suppressRouterSide: false },
    ]);
    const again = t.tick(11_000);
    expect(again.queries.filter((q) => q.group === G)).toHaveLength(1);
    expect(again.queries[0].suppressRouterSide).toBe(true);
    expect(filters(t)).toEqual([`${G} exclude []`]);
    const out = t.tick(12_000);
    expect(out.changed).toBe(true);
    expect(filters(t)).toEqual([]);
    expect(t.tick(13_000).queries.filter((q) => q.group === G)).toEqual([]);
  });

  it('a report during the last-member queries keeps the group', () => {
    const t = table();
    t.handleReport(7, v3(rec('TO_EX')), 0);
    t.handleReport(7, v3(rec('TO_IN')), 10_000);
    t.handleReport(7, v3(rec('IS_EX')), 10_500);
    t.tick(20_000);
    expect(filters(t)).toEqual([`${G} exclude []`]);
  });

  it('fast leave removes at once, without queries', () => {
    const t = table({ fastLeave: true });
    t.handleReport(7, v3(rec('TO_EX')), 0);
    const out = t.handleReport(7, v3(rec('TO_IN')), 10);
    expect(out).toEqual({ changed: true, queries: [] });
    expect(t.records()).toEqual([]);
  });
});

describe('source filters', () => {
  it('INCLUDE joins list their sources; BLOCK removes one (fast leave)', () => {
    const t = table({ fastLeave: true });
    t.handleReport(7, v3(rec('ALLOW', ['10.0.0.1', '10.0.0.2'])), 0);
    expect(filters(t)).toEqual([`${G} include [10.0.0.1,10.0.0.2]`]);
    t.handleReport(7, v3(rec('BLOCK', ['10.0.0.1'])), 1);
    expect(filters(t)).toEqual([`${G} include [10.0.0.2]`]);
  });

  it('EXCLUDE lists the blocked sources; ALLOW takes one back', () => {
    const t = table({ fastLeave: true });
    t.handleReport(7, v3(rec('TO_EX', ['10.0.0.1', '10.0.0.2'])), 0);
    expect(filters(t)).toEqual([`${G} exclude [10.0.0.1,10.0.0.2]`]);
    t.handleReport(7, v3(rec('ALLOW', ['10.0.0.1'])), 1);
    expect(filters(t)).toEqual([`${G} exclude [10.0.0.2]`]);
  });

  it('SSM groups accept INCLUDE and ignore (and count) EXCLUDE', () => {
    const t = table();
    t.handleReport(7, v3(rec('IS_IN', ['10.0.0.1'], '232.1.1.1'), rec('TO_EX', [], '232.1.1.2')), 0);
    t.handleReport(7, v2('IS_EX', '232.1.1.3'), 1);
    expect(filters(t)).toEqual(['232.1.1.1 include [10.0.0.1]']);
    expect(t.counters()['ssm-exclude-ignored']).toBe(2);
  });

  it('IGMPv2 compatibility: BLOCK is ignored and TO_EX drops its sources while a v2 host is present', () => {
    const t = table({ fastLeave: true });
    t.handleReport(7, v2('IS_EX'), 0);
    t.handleReport(7, v3(rec('BLOCK', ['10.0.0.1'])), 1);
    t.handleReport(7, v3(rec('TO_EX', ['10.0.0.1'])), 2);
    expect(filters(t)).toEqual([`${G} exclude []`]);
    t.handleReport(7, v2('TO_IN'), 3);
    expect(filters(t)).toEqual([]);
  });

  it('IGMPv1 compatibility ignores v2 leaves', () => {
    const t = table({ fastLeave: true });
    t.handleReport(7, { ...v2('IS_EX'), compat: 1 }, 0);
    t.handleReport(7, v2('TO_IN'), 1);
    expect(filters(t)).toEqual([`${G} exclude []`]);
  });
});

describe('hostile and bursty input', () => {
  it('rate-limits each endpoint with a token bucket and counts the drops', () => {
    const t = new MembershipTable('n1', { reportRate: { perSecond: 10, burst: 5 } });
    t.addEndpoint(EP, 0);
    t.addEndpoint({ network: 'red', endpointId: 8 }, 0);
    for (let i = 0; i < 8; i++) t.handleReport(7, v3(rec('TO_EX', [], `239.0.0.${i + 1}`)), 0);
    expect(t.records()).toHaveLength(5);
    expect(t.counters()['rate-limited']).toBe(3);
    t.handleReport(8, v3(rec('TO_EX')), 0); // another endpoint has its own bucket
    t.handleReport(7, v3(rec('TO_EX', [], '239.0.0.9')), 100); // one token back after 100 ms
    expect(t.records()).toHaveLength(7);
  });

  it('bounds groups per endpoint', () => {
    const t = table({ maxGroupsPerEndpoint: 2 });
    t.handleReport(7, v3(...[1, 2, 3].map((i) => rec('TO_EX', [], `239.0.0.${i}`))), 0);
    expect(t.records()).toHaveLength(2);
    expect(t.counters()['too-many-groups']).toBe(1);
  });

  it('drops a record with more sources than a report may carry, through the parser, and keeps its siblings', () => {
    const t = table();
    const sources = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    const frame = igmpFrame(
      igmpV3ReportBody([rec('IS_IN', sources(65), '239.3.3.3'), rec('IS_IN', sources(64), '239.4.4.4')]),
    );
    const f = parseFrame(frame);
    if (!f.ok) throw new Error(f.error.reason);
    t.handleFrame(7, f.value, frame, 0);
    expect(t.records().map((r) => `${r.group} ${r.filter.sources.length}`)).toEqual(['239.4.4.4 64']);
    expect(t.counters()['too-many-sources']).toBe(1);
  });

  it('refuses limits above the CRD’s, naming the field', () => {
    expect(() => table({ maxSourcesPerGroup: 65 })).toThrow(/maxSourcesPerGroup must be at most 64/);
    expect(() => table({ maxGroupsPerEndpoint: 4097 })).toThrow(/maxGroupsPerEndpoint must be at most 4096/);
  });

  it('counts malformed frames by reason and never throws', () => {
    const t = table();
    const good = igmpFrame(igmpV3ReportBody([rec('TO_EX')]));
    const bad = Uint8Array.from(good);
    bad[14 + 24 + 12] ^= 0xff;
    const parse = (b: Uint8Array) => {
      const f = parseFrame(b);
      if (!f.ok) throw new Error(f.error.reason);
      return f.value;
    };
    t.handleFrame(7, parse(bad), bad, 0);
    expect(t.counters()['malformed:bad-checksum']).toBe(1);
    t.handleFrame(7, parse(good), good, 0);
    const v2frame = igmpFrame(igmpV2Body(0x16, '239.2.2.2'));
    t.handleFrame(7, parse(v2frame), v2frame, 0);
    expect(filters(t).sort()).toEqual([`${G} exclude []`, '239.2.2.2 exclude []']);
  });
});

describe('querier', () => {
  it('sends robustness startup queries QI/4 apart, then one per QI', () => {
    const t = new MembershipTable('n1');
    const at = (now: number) => t.tick(now).queries.filter((q) => q.group === undefined).length;
    expect(t.addEndpoint(EP, 0).queries).toHaveLength(1);
    expect(at(31_000)).toBe(0);
    expect(at(31_250)).toBe(1);
    expect(at(100_000)).toBe(0);
    expect(at(156_250)).toBe(1);
    expect(t.nextDeadline()).toBe(281_250);
  });

  it('restores published records after a restart and lets them expire unless refreshed', () => {
    const t = table();
    t.restore(
      [
        {
          network: 'red',
          group: G,
          node: 'n1',
          endpointId: 7,
          filter: { mode: 'include', sources: ['10.0.0.1'] },
        },
      ],
      0,
    );
    expect(filters(t)).toEqual([`${G} include [10.0.0.1]`]);
    t.tick(260_000);
    expect(filters(t)).toEqual([]);
  });

  it('forgets a removed endpoint and announces it', () => {
    const t = table();
    t.handleReport(7, v3(rec('TO_EX')), 0);
    expect(t.removeEndpoint(7).changed).toBe(true);
    expect(t.records()).toEqual([]);
  });

  it('validates its configuration', () => {
    expect(() => new MembershipTable('n1', { queryIntervalMs: 0 })).toThrow(/queryIntervalMs/);
    expect(() => new MembershipTable('n1', { queryResponseIntervalMs: 200_000 })).toThrow(
      /queryResponseIntervalMs/,
    );
    expect(() => new TokenBucket({ perSecond: 0, burst: 1 }, 0)).toThrow(/perSecond/);
  });
});

describe('properties', () => {
  const groups = ['239.0.0.1', '239.0.0.2'];
  const sources = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
  type HostState = { mode: 'include' | 'exclude'; sources: string[] };
  const op = fc.record({
    group: fc.constantFrom(...groups),
    mode: fc.constantFrom('include' as const, 'exclude' as const),
    sources: fc.subarray(sources),
    dt: fc.integer({ min: 0, max: 5000 }),
  });

  it('with one host per link and fast leave, the published filter always equals the host’s (RFC 9776 host state-change records)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const t = table({ fastLeave: true, reportRate: { perSecond: 1000, burst: 1000 } });
        const host = new Map<string, HostState>();
        let now = 0;
        for (const o of ops) {
          now += o.dt;
          const before = host.get(o.group) ?? { mode: 'include', sources: [] };
          const after: HostState = { mode: o.mode, sources: o.sources };
          const A = new Set(before.sources);
          const B = new Set(after.sources);
          const records: GroupRecord[] = [];
          if (before.mode === after.mode) {
            const allow =
              before.mode === 'include' ? [...B].filter((s) => !A.has(s)) : [...A].filter((s) => !B.has(s));
            const block =
              before.mode === 'include' ? [...A].filter((s) => !B.has(s)) : [...B].filter((s) => !A.has(s));
            if (allow.length) records.push(rec('ALLOW', allow, o.group));
            if (block.length) records.push(rec('BLOCK', block, o.group));
          } else {
            records.push(rec(after.mode === 'include' ? 'TO_IN' : 'TO_EX', after.sources, o.group));
          }
          host.set(o.group, after);
          if (records.length) t.handleReport(7, v3(...records), now);
          const want = [...host]
            .filter(([, h]) => h.mode === 'exclude' || h.sources.length > 0)
            .map(([g, h]) => `${g} ${h.mode} [${[...h.sources].sort().join(',')}]`)
            .sort();
          expect(filters(t).sort()).toEqual(want);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('mutated IGMP/MLD frames never throw and leave only well-formed records', () => {
    const seeds = [
      igmpFrame(igmpV3ReportBody([rec('TO_EX', ['10.0.0.1']), rec('ALLOW', ['10.0.0.2'], '232.0.0.1')])),
      mldFrame(mldV2ReportBody([rec('IS_EX', [], 'ff05::1'), rec('IS_IN', ['fd00::1'], 'ff3e::1')])),
    ];
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      )
      .map(([seed, muts]) => {
        const b = Uint8Array.from(seed);
        for (const [i, v] of muts) b[i % b.length] = v;
        return b;
      });
    fc.assert(
      fc.property(fc.array(mutated, { maxLength: 20 }), (frames) => {
        const t = table({ reportRate: { perSecond: 1000, burst: 1000 } });
        frames.forEach((b, now) => {
          const f = parseFrame(b);
          if (f.ok && (f.value.kind === 'igmp' || f.value.kind === 'mld')) t.handleFrame(7, f.value, b, now);
        });
        for (const r of t.records()) {
          expect(isGroupAddress(r.group)).toBe(true);
          if (r.filter.mode === 'include') expect(r.filter.sources.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('any report sequence keeps records well-formed, and silence expires everything', () => {
    const anyRecord = fc.record({
      type: fc.constantFrom('IS_IN', 'IS_EX', 'TO_IN', 'TO_EX', 'ALLOW', 'BLOCK') as fc.Arbitrary<
        GroupRecord['type']
      >,
      group: fc.constantFrom(...groups, '232.0.0.1'),
      sources: fc.subarray(sources),
    });
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            records: fc.array(anyRecord, { maxLength: 3 }),
            compat: fc.constantFrom(1, 2, 3) as fc.Arbitrary<1 | 2 | 3>,
            dt: fc.integer({ min: 0, max: 100_000 }),
          }),
          { maxLength: 30 },
        ),
        fc.boolean(),
        (reports, fastLeave) => {
          const t = table({ fastLeave });
          let now = 0;
          for (const r of reports) {
            now += r.dt;
            t.handleReport(
              7,
              { kind: 'report', protocol: 'igmp', compat: r.compat, records: r.records, ignoredRecords: 0 },
              now,
            );
            t.tick(now);
            const rs = t.records();
            expect(new Set(rs.map((x) => x.group)).size).toBe(rs.length);
            for (const x of rs) {
              if (x.filter.mode === 'include') expect(x.filter.sources.length).toBeGreaterThan(0);
              if (x.group.startsWith('232.')) expect(x.filter.mode).toBe('include');
            }
          }
          t.tick(now + t.groupMembershipIntervalMs + 10_000);
          expect(t.records()).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });
});
