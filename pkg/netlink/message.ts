// Netlink wire format: message headers, attributes (TLVs) and the rtnetlink fixed headers.
// Pure functions over Buffers; the socket lives in socket.ts.
import {
  NLA_F_NESTED,
  NLA_TYPE_MASK,
  NLMSG_HDRLEN,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSGERR_ATTR_MSG,
} from './constants.js';

const align4 = (n: number): number => (n + 3) & ~3;

/** One netlink attribute. A nested attribute holds a list; a raw one holds its payload bytes. */
export interface Attr {
  type: number;
  value: Buffer | Attr[];
}

export const attr = {
  bytes: (type: number, value: Buffer): Attr => ({ type, value }),
  u8: (type: number, n: number): Attr => ({ type, value: Buffer.from([n]) }),
  u32: (type: number, n: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    return { type, value: b };
  },
  /** A NUL-terminated string, as the kernel expects for names. */
  str: (type: number, s: string): Attr => ({ type, value: Buffer.from(s + '\0') }),
  nested: (type: number, attrs: Attr[]): Attr => ({ type: type | NLA_F_NESTED, value: attrs }),
};

export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const payload = Array.isArray(a.value) ? encodeAttrs(a.value) : a.value;
    const len = 4 + payload.length;
    const head = Buffer.alloc(4);
    head.writeUInt16LE(len, 0);
    head.writeUInt16LE(a.type, 2);
    parts.push(head, payload, Buffer.alloc(align4(len) - len));
  }
  return Buffer.concat(parts);
}

/** Attributes by type (flags masked off). A repeated type keeps its last occurrence. */
export function parseAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export interface NlHeader {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export interface NlMessage extends NlHeader {
  payload: Buffer;
}

export function encodeMessage(h: NlHeader, body: Buffer): Buffer {
  const len = NLMSG_HDRLEN + body.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(h.type, 4);
  b.writeUInt16LE(h.flags, 6);
  b.writeUInt32LE(h.seq >>> 0, 8);
  b.writeUInt32LE(h.pid >>> 0, 12);
  body.copy(b, NLMSG_HDRLEN);
  return b;
}

/** Splits one received datagram into its messages. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length)
      throw new Error(`netlink: truncated message at offset ${off}`);
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** The payload of an NLMSG_ERROR: errno (0 for an ACK) and the kernel's extended-ACK message. */
export interface NlError {
  errno: number;
  message?: string;
}

export function parseError(m: NlMessage): NlError {
  const errno = Math.abs(m.payload.readInt32LE(0));
  if (!(m.flags & NLM_F_ACK_TLVS)) return { errno };
  // struct nlmsgerr: int error; struct nlmsghdr msg; [original payload unless capped]; TLVs.
  const origLen = m.payload.readUInt32LE(4);
  const tlvOffset = 4 + (m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(origLen));
  const msg = parseAttrs(m.payload.subarray(tlvOffset)).get(NLMSGERR_ATTR_MSG);
  return msg ? { errno, message: cString(msg) } : { errno };
}

export function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

// rtnetlink fixed headers

export interface IfInfoMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}

export const IFINFOMSG_LEN = 16;

export function encodeIfInfo(m: Partial<IfInfoMsg>): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(m.family ?? 0, 0);
  b.writeUInt16LE(m.type ?? 0, 2);
  b.writeInt32LE(m.index ?? 0, 4);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12);
  return b;
}

export function decodeIfInfo(b: Buffer): IfInfoMsg {
  return {
    family: b.readUInt8(0),
    type: b.readUInt16LE(2),
    index: b.readInt32LE(4),
    flags: b.readUInt32LE(8),
    change: b.readUInt32LE(12),
  };
}

export interface IfAddrMsg {
  family: number;
  prefixlen: number;
  flags: number;
  scope: number;
  index: number;
}

export const IFADDRMSG_LEN = 8;

export function encodeIfAddr(m: IfAddrMsg): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.prefixlen, 1);
  b.writeUInt8(m.flags & 0xff, 2);
  b.writeUInt8(m.scope, 3);
  b.writeUInt32LE(m.index, 4);
  return b;
}

export function decodeIfAddr(b: Buffer): IfAddrMsg {
  return {
    family: b.readUInt8(0),
    prefixlen: b.readUInt8(1),
    flags: b.readUInt8(2),
    scope: b.readUInt8(3),
    index: b.readUInt32LE(4),
  };
}

export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}

export const RTMSG_LEN = 12;

export function encodeRtMsg(m: RtMsg): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.dstLen, 1);
  b.writeUInt8(m.srcLen, 2);
  b.writeUInt8(m.tos, 3);
  b.writeUInt8(m.table, 4);
  b.writeUInt8(m.protocol, 5);
  b.writeUInt8(m.scope, 6);
  b.writeUInt8(m.type, 7);
  b.writeUInt32LE(m.flags >>> 0, 8);
  return b;
}

export function decodeRtMsg(b: Buffer): RtMsg {
  return {
    family: b.readUInt8(0),
    dstLen: b.readUInt8(1),
    srcLen: b.readUInt8(2),
    tos: b.readUInt8(3),
    table: b.readUInt8(4),
    protocol: b.readUInt8(5),
    scope: b.readUInt8(6),
    type: b.readUInt8(7),
    flags: b.readUInt32LE(8),
  };
}

export interface NdMsg {
  family: number;
  index: number;
  state: number;
  flags: number;
  type: number;
}

export const NDMSG_LEN = 12;

export function encodeNdMsg(m: NdMsg): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeInt32LE(m.index, 4);
  b.writeUInt16LE(m.state, 8);
  b.writeUInt8(m.flags, 10);
  b.writeUInt8(m.type, 11);
  return b;
}

export function decodeNdMsg(b: Buffer): NdMsg {
  return {
    family: b.readUInt8(0),
    index: b.readInt32LE(4),
    state: b.readUInt16LE(8),
    flags: b.readUInt8(10),
    type: b.readUInt8(11),
  };
}
