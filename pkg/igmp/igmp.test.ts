import fc from 'fast-check';
import { parseFrame } from '../frame/index.js';
import {
  buildIgmpQuery,
  buildMldQuery,
  decodeCode16,
  decodeCode8,
  encodeCode16,
  encodeCode8,
  linkLocalFromMac,
  parseMembershipFrame,
  type GroupRecord,
  type MembershipMessage,
} from './index.js';
import {
  igmpFrame,
  igmpV2Body,
  igmpV3ReportBody,
  mldFrame,
  mldV1Body,
  mldV2ReportBody,
} from '../../test/fixtures/igmp-reports.js';

function parse(frame: Uint8Array, verifyChecksum = true) {
  const f = parseFrame(frame);
  if (!f.ok) throw new Error(f.error.reason);
  return parseMembershipFrame(f.value, frame, { verifyChecksum });
}

function value(frame: Uint8Array): MembershipMessage {
  const r = parse(frame);
  if (!r.ok) throw new Error(`${r.error.field}: ${r.error.reason}`);
  return r.value;
}

const v4Records: GroupRecord[] = [
  { type: 'IS_IN', group: '232.1.1.1', sources: ['10.0.0.1', '10.0.0.2'] },
  { type: 'TO_EX', group: '239.1.1.1', sources: [] },
  { type: 'BLOCK', group: '239.1.1.2', sources: ['10.0.0.9'] },
];

describe('IGMP', () => {
  it('parses v3 reports with every record type and its sources', () => {
    expect(value(igmpFrame(igmpV3ReportBody(v4Records)))).toEqual({
      kind: 'report',
      protocol: 'igmp',
      compat: 3,
      records: v4Records,
      ignoredRecords: 0,
    });
  });

  it('maps v1/v2 reports to IS_EX({}) and v2 leaves to TO_IN({})', () => {
    expect(value(igmpFrame(igmpV2Body(0x12, '239.1.1.1')))).toMatchObject({
      compat: 1,
      records: [{ type: 'IS_EX', group: '239.1.1.1', sources: [] }],
    });
    expect(value(igmpFrame(igmpV2Body(0x16, '239.1.1.1')))).toMatchObject({
      compat: 2,
      records: [{ type: 'IS_EX', group: '239.1.1.1', sources: [] }],
    });
    expect(value(igmpFrame(igmpV2Body(0x17, '239.1.1.1')))).toMatchObject({
      compat: 2,
      records: [{ type: 'TO_IN', group: '239.1.1.1', sources: [] }],
    });
  });

  it('ignores records for link-local groups', () => {
    const r = value(
      igmpFrame(igmpV3ReportBody([{ type: 'IS_EX', group: '224.0.0.251', sources: [] }, ...v4Records])),
    );
    expect(r.kind === 'report' && [r.records.length, r.ignoredRecords]).toEqual([3, 1]);
  });

  it.each([
    [
      'bad checksum',
      () => {
        const f = igmpFrame(igmpV2Body(0x16, '239.1.1.1'));
        f[14 + 24 + 5] ^= 1; // a group byte
        return f;
      },
      'bad-checksum',
    ],
    ['unknown type', () => igmpFrame(igmpV2Body(0x99 as 0x16, '239.1.1.1')), 'bad-type'],
    ['unicast group', () => igmpFrame(igmpV2Body(0x16, '10.1.1.1')), 'bad-group'],
    [
      'too many records',
      () =>
        igmpFrame(
          igmpV3ReportBody(
            Array.from({ length: 65 }, (_, i) => ({
              type: 'IS_EX' as const,
              group: `239.0.0.${i + 1}`,
              sources: [],
            })),
          ),
        ),
      'too-many-records',
    ],
    [
      'too many sources',
      () =>
        igmpFrame(
          igmpV3ReportBody([
            {
              type: 'IS_IN',
              group: '239.0.0.1',
              sources: Array.from({ length: 129 }, (_, i) => `10.0.${i >> 8}.${i & 255}`),
            },
          ]),
        ),
      'too-many-sources',
    ],
  ])('refuses a report with %s', (_n, make, code) => {
    const r = parse(make());
    expect(!r.ok && r.error.code).toBe(code);
  });

  it('refuses truncated reports whose IP length was cut to match', () => {
    const body = igmpV3ReportBody(v4Records);
    for (let n = 8; n < body.length; n++) {
      const cut = body.slice(0, n);
      cut[2] = 0;
      cut[3] = 0;
      const r = parse(igmpFrame(cut), false);
      expect(r.ok ? 'ok' : r.error.code).toBe('truncated');
    }
  });

  it('builds an IGMPv3 general query to 224.0.0.1 with TTL 1 and Router Alert, which parses back', () => {
    const q = buildIgmpQuery({
      querierMac: '02:00:00:00:00:01',
      querierIp: '10.0.0.254',
      maxResponseMs: 10000,
      robustness: 2,
      queryIntervalSec: 125,
    });
    const f = parseFrame(q);
    expect(f.ok && [f.value.dstMac, f.value.ip?.dst, f.value.ip?.ttl, f.value.ip?.routerAlert]).toEqual([
      '01:00:5e:00:00:01',
      '224.0.0.1',
      1,
      true,
    ]);
    expect(value(q)).toEqual({
      kind: 'query',
      protocol: 'igmp',
      compat: 3,
      group: '0.0.0.0',
      sources: [],
      maxResponseMs: 10000,
      suppressRouterSide: false,
      robustness: 2,
      queryIntervalSec: 125,
    });
    const gs = buildIgmpQuery({
      querierMac: '02:00:00:00:00:01',
      querierIp: '10.0.0.254',
      group: '239.1.1.1',
      sources: ['10.0.0.1'],
      maxResponseMs: 1000,
      robustness: 2,
      queryIntervalSec: 125,
      suppressRouterSide: true,
    });
    expect(value(gs)).toMatchObject({
      group: '239.1.1.1',
      sources: ['10.0.0.1'],
      maxResponseMs: 1000,
      suppressRouterSide: true,
    });
    expect(parseFrame(gs).ok && (parseFrame(gs) as { value: { dstMac: string } }).value.dstMac).toBe(
      '01:00:5e:01:01:01',
    );
  });
});

describe('MLD', () => {
  const v6Records: GroupRecord[] = [
    { type: 'ALLOW', group: 'ff3e::8000:1', sources: ['fd00::1'] },
    { type: 'IS_EX', group: 'ff05::2', sources: [] },
  ];

  it('parses MLDv2 reports behind the hop-by-hop header, checking the pseudo-header checksum', () => {
    expect(value(mldFrame(mldV2ReportBody(v6Records)))).toEqual({
      kind: 'report',
      protocol: 'mld',
      compat: 3,
      records: v6Records,
      ignoredRecords: 0,
    });
    const f = mldFrame(mldV2ReportBody(v6Records));
    f[14 + 8 + 15] ^= 1; // flip a bit of the source address: only the pseudo-header notices
    const r = parse(f);
    expect(!r.ok && r.error.code).toBe('bad-checksum');
  });

  it('maps MLDv1 reports and dones like IGMPv2, and ignores solicited-node groups', () => {
    expect(value(mldFrame(mldV1Body(131, 'ff05::2')))).toMatchObject({
      compat: 2,
      records: [{ type: 'IS_EX', group: 'ff05::2' }],
    });
    expect(value(mldFrame(mldV1Body(132, 'ff05::2')))).toMatchObject({
      compat: 2,
      records: [{ type: 'TO_IN', group: 'ff05::2' }],
    });
    expect(value(mldFrame(mldV1Body(131, 'ff02::1:ff00:5')))).toMatchObject({
      records: [],
      ignoredRecords: 1,
    });
  });

  it('builds an MLDv2 general query to ff02::1 with hop limit 1 and Router Alert, which parses back', () => {
    const mac = '02:00:00:00:00:01';
    const q = buildMldQuery({
      querierMac: mac,
      querierIp: linkLocalFromMac(mac),
      maxResponseMs: 10000,
      robustness: 2,
      queryIntervalSec: 125,
    });
    const f = parseFrame(q);
    expect(
      f.ok && [f.value.dstMac, f.value.ip?.src, f.value.ip?.dst, f.value.ip?.ttl, f.value.ip?.routerAlert],
    ).toEqual(['33:33:00:00:00:01', 'fe80::ff:fe00:1', 'ff02::1', 1, true]);
    expect(value(q)).toEqual({
      kind: 'query',
      protocol: 'mld',
      compat: 3,
      group: '::',
      sources: [],
      maxResponseMs: 10000,
      suppressRouterSide: false,
      robustness: 2,
      queryIntervalSec: 125,
    });
    const big = buildMldQuery({
      querierMac: mac,
      querierIp: 'fe80::1',
      group: 'ff05::2',
      sources: ['fd00::1'],
      maxResponseMs: 40000,
      robustness: 3,
      queryIntervalSec: 300,
    });
    expect(value(big)).toMatchObject({
      group: 'ff05::2',
      sources: ['fd00::1'],
      robustness: 3,
      queryIntervalSec: 288, // 300 is not representable: the code rounds down
      maxResponseMs: 40000,
    });
  });
});

describe('codes and fuzzing', () => {
  it('encodes the 8- and 16-bit floating-point codes to the nearest value not above', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 31744 }), (v) => {
        const d = decodeCode8(encodeCode8(v));
        expect(d).toBeLessThanOrEqual(v);
        expect(d).toBeGreaterThan(v * 0.93 - 1);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8387584 }), (v) => {
        const d = decodeCode16(encodeCode16(v));
        expect(d).toBeLessThanOrEqual(v);
        expect(d).toBeGreaterThan(v * 0.999 - 1);
      }),
    );
    expect(decodeCode8(encodeCode8(125))).toBe(125);
    expect(decodeCode8(encodeCode8(260))).toBe(256);
  });

  it('never throws on arbitrary or mutated IGMP/MLD payloads', () => {
    const seeds = [
      igmpFrame(igmpV3ReportBody(v4Records)),
      mldFrame(mldV2ReportBody([{ type: 'IS_IN', group: 'ff05::1', sources: ['fd00::1', 'fd00::2'] }])),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.boolean(),
        (seed, muts, tail, verify) => {
          const c = Uint8Array.from(seed);
          for (const [i, v] of muts) c[i % c.length] = v;
          const f = parseFrame(c);
          if (f.ok && (f.value.kind === 'igmp' || f.value.kind === 'mld'))
            parseMembershipFrame(f.value, c, { verifyChecksum: verify });
          // Arbitrary bodies behind valid headers exercise the record walker directly.
          const body = Uint8Array.from([seed === seeds[0] ? 0x22 : 143, ...tail]);
          const g = seed === seeds[0] ? igmpFrame(body) : mldFrame(body);
          const pf = parseFrame(g);
          if (pf.ok) parseMembershipFrame(pf.value, g, { verifyChecksum: false });
        },
      ),
      { numRuns: 5000 },
    );
  });
});
