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

// rtnetlink fixed headers: each C struct's layout is written once, in a table that both its encoder
// and its decoder read, so the two cannot disagree. Host byte order (little-endian here).

type FieldKind = 'u8' | 'u16' | 'u32' | 'i32';

interface Struct<T> {
  len: number;
  /** Absent fields are 0; each value is truncated to its field's width, as a C assignment would. */
  encode(m: Partial<T>): Buffer;
  decode(b: Buffer): T;
}

function struct<T extends { [K in keyof T]: number }>(
  len: number,
  fields: { [K in keyof T]: [offset: number, kind: FieldKind] },
): Struct<T> {
  const layout = Object.entries(fields) as [keyof T & string, [number, FieldKind]][];
  return {
    len,
    encode(m) {
      const b = Buffer.alloc(len);
      for (const [name, [off, kind]] of layout) {
        const v = m[name] ?? 0;
        if (kind === 'u8') b.writeUInt8(v & 0xff, off);
        else if (kind === 'u16') b.writeUInt16LE(v & 0xffff, off);
        else if (kind === 'u32') b.writeUInt32LE(v >>> 0, off);
        else b.writeInt32LE(v | 0, off);
      }
      return b;
    },
    decode(b) {
      const out: Record<string, number> = {};
      for (const [name, [off, kind]] of layout)
        out[name] =
          kind === 'u8'
            ? b.readUInt8(off)
            : kind === 'u16'
              ? b.readUInt16LE(off)
              : kind === 'u32'
                ? b.readUInt32LE(off)
                : b.readInt32LE(off);
      return out as T;
    },
  };
}

/** struct ifinfomsg (<linux/rtnetlink.h>). */
export interface IfInfoMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}

const ifInfoMsg = struct<IfInfoMsg>(16, {
  family: [0, 'u8'],
  type: [2, 'u16'],
  index: [4, 'i32'],
  flags: [8, 'u32'],
  change: [12, 'u32'],
});
export const IFINFOMSG_LEN = ifInfoMsg.len;
export const encodeIfInfo = ifInfoMsg.encode;
export const decodeIfInfo = ifInfoMsg.decode;

/** struct ifaddrmsg (<linux/if_addr.h>): flags holds the low 8 bits; IFA_FLAGS carries all. */
export interface IfAddrMsg {
  family: number;
  prefixlen: number;
  flags: number;
  scope: number;
  index: number;
}

const ifAddrMsg = struct<IfAddrMsg>(8, {
  family: [0, 'u8'],
  prefixlen: [1, 'u8'],
  flags: [2, 'u8'],
  scope: [3, 'u8'],
  index: [4, 'u32'],
});
export const IFADDRMSG_LEN = ifAddrMsg.len;
export const encodeIfAddr = ifAddrMsg.encode;
export const decodeIfAddr = ifAddrMsg.decode;

/** struct rtmsg (<linux/rtnetlink.h>). */
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

const rtMsg = struct<RtMsg>(12, {
  family: [0, 'u8'],
  dstLen: [1, 'u8'],
  srcLen: [2, 'u8'],
  tos: [3, 'u8'],
  table: [4, 'u8'],
  protocol: [5, 'u8'],
  scope: [6, 'u8'],
  type: [7, 'u8'],
  flags: [8, 'u32'],
});
export const RTMSG_LEN = rtMsg.len;
export const encodeRtMsg = rtMsg.encode;
export const decodeRtMsg = rtMsg.decode;

/** struct ndmsg (<linux/neighbour.h>). */
export interface NdMsg {
  family: number;
  index: number;
  state: number;
  flags: number;
  type: number;
}

const ndMsg = struct<NdMsg>(12, {
  family: [0, 'u8'],
  index: [4, 'i32'],
  state: [8, 'u16'],
  flags: [10, 'u8'],
  type: [11, 'u8'],
});
export const NDMSG_LEN = ndMsg.len;
export const encodeNdMsg = ndMsg.encode;
export const decodeNdMsg = ndMsg.decode;
