// IGMP (v1/v2/v3, RFC 9776) and MLD (v1/v2, RFC 9777) message parsing. Bounded, never throws, and
// every error names what is wrong; the agent counts drops by `code`.
import {
  formatIPv4,
  formatIPv6,
  isIPv4LinkLocalMulticast,
  isIPv4Multicast,
  isIPv6Multicast,
} from '../netaddr/address.js';
import { ipv6PseudoHeaderSum, verifiesChecksum } from '../frame/checksum.js';
import { IPPROTO_ICMPV6, type ParsedFrame } from '../frame/ethernet.js';
import { err, fieldError, ok, type FieldError, type Result } from '../frame/result.js';
import { decodeCode16, decodeCode8 } from './codes.js';

export type RecordType = 'IS_IN' | 'IS_EX' | 'TO_IN' | 'TO_EX' | 'ALLOW' | 'BLOCK';
const RECORD_TYPES: readonly RecordType[] = ['IS_IN', 'IS_EX', 'TO_IN', 'TO_EX', 'ALLOW', 'BLOCK'];

export interface GroupRecord {
  type: RecordType;
  group: string;
  sources: string[];
}

/**
 * `compat` is the IGMP-equivalent version that the router-side state machine reacts to:
 * IGMPv1 = 1, IGMPv2 and MLDv1 = 2, IGMPv3 and MLDv2 = 3.
 */
export type Compat = 1 | 2 | 3;

/** A host's IGMP or MLD report (not the MembershipReport custom resource, which agents write). */
export interface IgmpReport {
  kind: 'report';
  protocol: 'igmp' | 'mld';
  compat: Compat;
  /** v1/v2 reports become IS_EX({}) records and v2 leaves / MLD dones TO_IN({}), as RFC 9776 7.3.2 maps them. */
  records: GroupRecord[];
  /** Records ignored as RFC 9776 asks: unknown types, non-multicast or link-local-scope groups. */
  ignoredRecords: number;
}

export interface MembershipQuery {
  kind: 'query';
  protocol: 'igmp' | 'mld';
  compat: Compat;
  /** 0.0.0.0 or :: for a general query. */
  group: string;
  sources: string[];
  maxResponseMs: number;
  suppressRouterSide: boolean;
  robustness: number;
  queryIntervalSec: number;
}

export type MembershipMessage = IgmpReport | MembershipQuery;

export type MembershipErrorCode =
  | 'truncated'
  | 'bad-checksum'
  | 'bad-type'
  | 'bad-length'
  | 'too-many-records'
  | 'too-many-sources'
  | 'bad-group'
  | 'not-membership';

export type MembershipError = FieldError<MembershipErrorCode>;

export interface ParseLimits {
  /** Group records per report (more: the whole report is refused). */
  maxRecords: number;
  /** Sources per record and per query. */
  maxSources: number;
}

export const DEFAULT_LIMITS: ParseLimits = { maxRecords: 64, maxSources: 128 };

export interface ParseOptions {
  limits?: ParseLimits;
  /** False when the frame carries a partial checksum (virtio-net NEEDS_CSUM): the receiver finishes it. */
  verifyChecksum?: boolean;
}

const IGMP_QUERY = 0x11;
const IGMP_V1_REPORT = 0x12;
const IGMP_V2_REPORT = 0x16;
const IGMP_V2_LEAVE = 0x17;
const IGMP_V3_REPORT = 0x22;
const MLD_QUERY = 130;
const MLD_V1_REPORT = 131;
const MLD_V1_DONE = 132;
const MLD_V2_REPORT = 143;

const fail = (code: MembershipErrorCode, field: string, reason: string) =>
  err(fieldError(code, field, reason));

/** Parses the IGMP message in b[off, off+len). */
export function parseIgmp(
  b: Uint8Array,
  off: number,
  len: number,
  opts: ParseOptions = {},
): Result<MembershipMessage, MembershipError> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  if (len < 8 || off + len > b.length)
    return fail('truncated', 'igmp', `needs at least 8 bytes, got ${Math.min(len, b.length - off)}`);
  if (opts.verifyChecksum !== false && !verifiesChecksum(b, off, off + len))
    return fail('bad-checksum', 'igmp.checksum', 'does not verify');
  const type = b[off];
  const group = () => formatIPv4(b, off + 4);
  switch (type) {
    case IGMP_V1_REPORT:
    case IGMP_V2_REPORT:
    case IGMP_V2_LEAVE: {
      if (!isIPv4Multicast(b, off + 4))
        return fail('bad-group', 'igmp.group', `${group()} is not a multicast group`);
      const linkLocal = isIPv4LinkLocalMulticast(b, off + 4);
      const leave = type === IGMP_V2_LEAVE;
      return ok({
        kind: 'report',
        protocol: 'igmp',
        compat: type === IGMP_V1_REPORT ? 1 : 2,
        records: linkLocal ? [] : [{ type: leave ? 'TO_IN' : 'IS_EX', group: group(), sources: [] }],
        ignoredRecords: linkLocal ? 1 : 0,
      });
    }
    case IGMP_QUERY: {
      if (len === 8) {
        return ok({
          kind: 'query',
          protocol: 'igmp',
          compat: b[off + 1] === 0 ? 1 : 2,
          group: group(),
          sources: [],
          maxResponseMs: b[off + 1] === 0 ? 10000 : b[off + 1] * 100,
          suppressRouterSide: false,
          robustness: 2,
          queryIntervalSec: 125,
        });
      }
      if (len < 12)
        return fail(
          'bad-length',
          'igmp.length',
          `${len} bytes is neither a v1/v2 (8) nor a v3 (>= 12) query`,
        );
      const n = (b[off + 10] << 8) | b[off + 11];
      if (n > limits.maxSources)
        return fail('too-many-sources', 'igmp.query.sources', `${n} > limit ${limits.maxSources}`);
      if (len < 12 + 4 * n)
        return fail('truncated', 'igmp.query.sources', `${n} sources need ${12 + 4 * n} bytes, got ${len}`);
      return ok({
        kind: 'query',
        protocol: 'igmp',
        compat: 3,
        group: group(),
        sources: Array.from({ length: n }, (_, i) => formatIPv4(b, off + 12 + 4 * i)),
        maxResponseMs: decodeCode8(b[off + 1]) * 100,
        suppressRouterSide: (b[off + 8] & 0x08) !== 0,
        robustness: b[off + 8] & 0x07,
        queryIntervalSec: decodeCode8(b[off + 9]),
      });
    }
    case IGMP_V3_REPORT:
      return parseV3Records(b, off, len, 8, 4, limits, 'igmp');
    default:
      return fail('bad-type', 'igmp.type', `0x${type.toString(16)} is not an IGMP query, report or leave`);
  }
}

/** Parses the MLD message in b[off, off+len) of an IPv6 packet whose addresses are at srcOff/dstOff. */
export function parseMld(
  b: Uint8Array,
  off: number,
  len: number,
  srcOff: number,
  dstOff: number,
  opts: ParseOptions = {},
): Result<MembershipMessage, MembershipError> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  if (len < 8 || off + len > b.length)
    return fail('truncated', 'mld', `needs at least 8 bytes, got ${Math.min(len, b.length - off)}`);
  if (opts.verifyChecksum !== false) {
    const pseudo = ipv6PseudoHeaderSum(b, srcOff, b, dstOff, len, IPPROTO_ICMPV6);
    if (!verifiesChecksum(b, off, off + len, pseudo))
      return fail('bad-checksum', 'mld.checksum', 'does not verify (IPv6 pseudo-header)');
  }
  const type = b[off];
  switch (type) {
    case MLD_V1_REPORT:
    case MLD_V1_DONE: {
      if (len < 24) return fail('truncated', 'mld.group', `MLDv1 needs 24 bytes, got ${len}`);
      const group = formatIPv6(b, off + 8);
      if (!isIPv6Multicast(b, off + 8))
        return fail('bad-group', 'mld.group', `${group} is not a multicast group`);
      // Link-scope groups (solicited-node, ff02::1) are flooded by the data plane: nothing to track.
      const linkScope = (b[off + 9] & 0x0f) <= 2;
      return ok({
        kind: 'report',
        protocol: 'mld',
        compat: 2,
        records: linkScope ? [] : [{ type: type === MLD_V1_DONE ? 'TO_IN' : 'IS_EX', group, sources: [] }],
        ignoredRecords: linkScope ? 1 : 0,
      });
    }
    case MLD_QUERY: {
      if (len < 24) return fail('truncated', 'mld.query', `needs 24 bytes, got ${len}`);
      const group = formatIPv6(b, off + 8);
      const mrc = (b[off + 4] << 8) | b[off + 5];
      if (len < 28) {
        return ok({
          kind: 'query',
          protocol: 'mld',
          compat: 2,
          group,
          sources: [],
          maxResponseMs: mrc,
          suppressRouterSide: false,
          robustness: 2,
          queryIntervalSec: 125,
        });
      }
      const n = (b[off + 26] << 8) | b[off + 27];
      if (n > limits.maxSources)
        return fail('too-many-sources', 'mld.query.sources', `${n} > limit ${limits.maxSources}`);
      if (len < 28 + 16 * n)
        return fail('truncated', 'mld.query.sources', `${n} sources need ${28 + 16 * n} bytes, got ${len}`);
      return ok({
        kind: 'query',
        protocol: 'mld',
        compat: 3,
        group,
        sources: Array.from({ length: n }, (_, i) => formatIPv6(b, off + 28 + 16 * i)),
        maxResponseMs: decodeCode16(mrc),
        suppressRouterSide: (b[off + 24] & 0x08) !== 0,
        robustness: b[off + 24] & 0x07,
        queryIntervalSec: decodeCode8(b[off + 25]),
      });
    }
    case MLD_V2_REPORT:
      return parseV3Records(b, off, len, 8, 16, limits, 'mld');
    default:
      return fail('bad-type', 'mld.type', `${type} is not an MLD query, report or done`);
  }
}

/** IGMPv3 and MLDv2 reports share a layout; only the address size differs. */
function parseV3Records(
  b: Uint8Array,
  off: number,
  len: number,
  headerLen: number,
  addrLen: 4 | 16,
  limits: ParseLimits,
  protocol: 'igmp' | 'mld',
): Result<IgmpReport, MembershipError> {
  const count = (b[off + 6] << 8) | b[off + 7];
  if (count > limits.maxRecords)
    return fail('too-many-records', `${protocol}.report.records`, `${count} > limit ${limits.maxRecords}`);
  const end = off + len;
  const records: GroupRecord[] = [];
  let ignoredRecords = 0;
  let p = off + headerLen;
  for (let i = 0; i < count; i++) {
    const field = `${protocol}.report.record[${i}]`;
    if (end - p < 4 + addrLen) return fail('truncated', field, `needs ${4 + addrLen} bytes, ${end - p} left`);
    const rtype = b[p];
    const aux = b[p + 1] * 4;
    const n = (b[p + 2] << 8) | b[p + 3];
    if (n > limits.maxSources)
      return fail('too-many-sources', `${field}.sources`, `${n} > limit ${limits.maxSources}`);
    const size = 4 + addrLen + addrLen * n + aux;
    if (end - p < size) return fail('truncated', field, `needs ${size} bytes, ${end - p} left`);
    const ga = p + 4;
    const routable =
      addrLen === 4
        ? isIPv4Multicast(b, ga) && !isIPv4LinkLocalMulticast(b, ga)
        : isIPv6Multicast(b, ga) && (b[ga + 1] & 0x0f) > 2;
    if (rtype < 1 || rtype > 6 || !routable) {
      ignoredRecords++;
    } else {
      const fmt = addrLen === 4 ? formatIPv4 : formatIPv6;
      records.push({
        type: RECORD_TYPES[rtype - 1],
        group: fmt(b, ga),
        sources: Array.from({ length: n }, (_, k) => fmt(b, ga + addrLen + addrLen * k)),
      });
    }
    p += size;
  }
  return ok({ kind: 'report', protocol, compat: 3, records, ignoredRecords });
}

/** Parses the IGMP or MLD message carried by a parsed frame (frame.kind 'igmp' or 'mld'). */
export function parseMembershipFrame(
  f: ParsedFrame,
  b: Uint8Array,
  opts: ParseOptions = {},
): Result<MembershipMessage, MembershipError> {
  const ip = f.ip;
  if (!ip || (f.kind !== 'igmp' && f.kind !== 'mld'))
    return fail('not-membership', 'frame', `a ${f.kind} frame is not IGMP or MLD`);
  if (f.kind === 'igmp') return parseIgmp(b, ip.payloadOffset, ip.payloadLength, opts);
  return parseMld(b, ip.payloadOffset, ip.payloadLength, ip.srcOffset, ip.dstOffset, opts);
}
