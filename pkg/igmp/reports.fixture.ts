// Host-side report builders for tests (castnet itself never sends reports). Kept apart from the
// tests so pkg/membership's tests can speak real IGMP/MLD bytes too.
import { parseIPv4, parseIPv6 } from '../netaddr/address.js';
import { buildIPv4Frame, buildIPv6Frame } from '../frame/build.js';
import { internetChecksum } from '../frame/checksum.js';
import { IPPROTO_ICMPV6, IPPROTO_IGMP } from '../frame/ethernet.js';
import type { GroupRecord } from './parse.js';

const TYPES = ['IS_IN', 'IS_EX', 'TO_IN', 'TO_EX', 'ALLOW', 'BLOCK'];

export function igmpV3ReportBody(records: GroupRecord[]): Uint8Array {
  const size = 8 + records.reduce((n, r) => n + 8 + 4 * r.sources.length, 0);
  const b = new Uint8Array(size);
  b[0] = 0x22;
  b[6] = records.length >> 8;
  b[7] = records.length & 0xff;
  let p = 8;
  for (const r of records) {
    b[p] = TYPES.indexOf(r.type) + 1;
    b[p + 2] = r.sources.length >> 8;
    b[p + 3] = r.sources.length & 0xff;
    b.set(parseIPv4(r.group)!, p + 4);
    r.sources.forEach((s, i) => b.set(parseIPv4(s)!, p + 8 + 4 * i));
    p += 8 + 4 * r.sources.length;
  }
  const c = internetChecksum(b, 0, b.length);
  b[2] = c >> 8;
  b[3] = c & 0xff;
  return b;
}

export function igmpV2Body(type: 0x12 | 0x16 | 0x17, group: string): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = type;
  b.set(parseIPv4(group)!, 4);
  const c = internetChecksum(b, 0, 8);
  b[2] = c >> 8;
  b[3] = c & 0xff;
  return b;
}

export function igmpFrame(body: Uint8Array, src = '10.0.0.5', srcMac = '02:00:00:00:00:05'): Uint8Array {
  return buildIPv4Frame({
    dstMac: '01:00:5e:00:00:16',
    srcMac,
    src,
    dst: '224.0.0.22',
    protocol: IPPROTO_IGMP,
    ttl: 1,
    routerAlert: true,
    payload: body,
  });
}

export function mldV2ReportBody(records: GroupRecord[]): Uint8Array {
  const size = 8 + records.reduce((n, r) => n + 20 + 16 * r.sources.length, 0);
  const b = new Uint8Array(size);
  b[0] = 143;
  b[6] = records.length >> 8;
  b[7] = records.length & 0xff;
  let p = 8;
  for (const r of records) {
    b[p] = TYPES.indexOf(r.type) + 1;
    b[p + 2] = r.sources.length >> 8;
    b[p + 3] = r.sources.length & 0xff;
    b.set(parseIPv6(r.group)!, p + 4);
    r.sources.forEach((s, i) => b.set(parseIPv6(s)!, p + 20 + 16 * i));
    p += 20 + 16 * r.sources.length;
  }
  return b; // the checksum is filled in by buildIPv6Frame
}

export function mldV1Body(type: 131 | 132, group: string): Uint8Array {
  const b = new Uint8Array(24);
  b[0] = type;
  b.set(parseIPv6(group)!, 8);
  return b;
}

export function mldFrame(body: Uint8Array, src = 'fe80::5', srcMac = '02:00:00:00:00:05'): Uint8Array {
  return buildIPv6Frame({
    dstMac: '33:33:00:00:00:16',
    srcMac,
    src,
    dst: 'ff02::16',
    nextHeader: IPPROTO_ICMPV6,
    hopLimit: 1,
    routerAlert: true,
    payload: body,
  });
}
