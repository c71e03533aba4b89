// castnet's encapsulation (docs/wire-format.md): one UDP datagram carries one Ethernet frame to the
// listed endpoints of one node. Decoding is strict and never throws: bad input is a typed WireError.
import { createHash, hash, timingSafeEqual } from 'node:crypto';
import { err, fieldError, ok, type FieldError, type Result } from '../frame/result.js';
import { ETH_HLEN } from '../frame/ethernet.js';
import { VNET_HDR_LEN } from '../frame/vnet.js';
import { sipTag, sipVerify, SIPHASH_TAG_LEN, type SipKey } from './siphash.js';

export const WIRE_MAGIC = 0x434e; // "CN"
export const WIRE_VERSION = 1;
/** Per-pair keys, sequence numbers and a SipHash tag on every datagram (docs/wire-format.md). */
export const WIRE_VERSION_2 = 2;
export const WIRE_TYPE_DATA = 1;
export const HEADER_LEN = 16;
/** Version 2's header: version 1's, then sender epoch, receiver epoch and sequence number. */
export const HEADER_V2_LEN = 32;
export const TAG_V2_LEN = SIPHASH_TAG_LEN;
/** Sequence numbers stay safe integers; a pair key is rotated long before (2^53 at 10 Mpps: 28 years). */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;
export const DEST_ID_LEN = 4;
export const TAG_LEN = 16;
export const FLAG_VNET_HDR = 0x01;
export const FLAG_AUTH_TAG = 0x02;
const KNOWN_FLAGS = FLAG_VNET_HDR | FLAG_AUTH_TAG;
export const MAX_NETWORK_ID = 0xffffff;
export const MAX_DESTINATIONS = 0xffff;
export const MAX_FRAME_LEN = 0xffff;
const MIN_KEY_LEN = 16;
const SHA256_BLOCK = 64;

/** One data datagram: an Ethernet frame for the listed endpoints of the receiving node. */
export interface DataMessage {
  /** VirtualNetwork ID (24 bits). */
  networkId: number;
  /** Endpoint ID of the sender, on the sending node. */
  sourceEndpointId: number;
  /** Endpoint IDs on the receiving node (at least one). */
  destinations: number[];
  /** Whether `frame` starts with a 10-byte virtio_net_hdr. */
  vnetHeader: boolean;
  /** The frame exactly as captured (on decode: a view into the datagram, not a copy). */
  frame: Uint8Array;
}

export type WireErrorCode =
  | 'truncated'
  | 'bad-magic'
  | 'bad-version'
  | 'bad-type'
  | 'bad-flags'
  | 'bad-count'
  | 'bad-length'
  | 'trailing-bytes'
  | 'missing-tag'
  | 'unexpected-tag'
  | 'bad-tag'
  | 'bad-seq'
  | 'unknown-key'
  | 'stale-key'
  | 'frame-too-large';

export type WireError = FieldError<WireErrorCode>;

/**
 * A cluster's datagram key (HMAC-SHA256, RFC 2104). The padded inner and outer keys are computed
 * once, so a tag costs two one-shot hashes instead of a new Hmac object per datagram (about half
 * the time). Decoding accepts several keys, so keys can be rotated.
 */
export class WireKey {
  /** K xor ipad, followed by room for nothing: the message is appended in a scratch buffer. */
  readonly innerPad: Buffer;
  /** K xor opad (64 bytes) followed by 32 bytes where the inner digest goes. */
  readonly outerBlock: Buffer;

  constructor(secret: Uint8Array) {
    if (secret.length < MIN_KEY_LEN) {
      throw new Error(`wire key: ${secret.length} bytes is too short, need at least ${MIN_KEY_LEN}`);
    }
    const k =
      secret.length > SHA256_BLOCK ? createHash('sha256').update(secret).digest() : Buffer.from(secret);
    this.innerPad = Buffer.alloc(SHA256_BLOCK, 0x36);
    this.outerBlock = Buffer.alloc(SHA256_BLOCK + 32, 0);
    this.outerBlock.fill(0x5c, 0, SHA256_BLOCK);
    for (let i = 0; i < k.length; i++) {
      this.innerPad[i] ^= k[i];
      this.outerBlock[i] ^= k[i];
    }
  }
}

export function makeWireKey(secret: Uint8Array): WireKey {
  return new WireKey(secret);
}

let scratch = Buffer.allocUnsafe(SHA256_BLOCK + 2048);

/** HMAC-SHA256(key, b[0, end)) truncated to TAG_LEN bytes. */
export function computeTag(key: WireKey, b: Uint8Array, end: number): Buffer {
  const need = SHA256_BLOCK + end;
  if (scratch.length < need) scratch = Buffer.allocUnsafe(need);
  key.innerPad.copy(scratch, 0);
  scratch.set(b.subarray(0, end), SHA256_BLOCK);
  const inner = hash('sha256', scratch.subarray(0, need), 'buffer');
  inner.copy(key.outerBlock, SHA256_BLOCK);
  return hash('sha256', key.outerBlock, 'buffer').subarray(0, TAG_LEN);
}

/** How a datagram is authenticated: none, v1's cluster HMAC (true), or a v2 pair key ('v2'). */
export type AuthMode = boolean | 'v2';

/** Bytes of header and tag around the ID list and the frame. */
export function fixedOverhead(auth: AuthMode): number {
  return auth === 'v2' ? HEADER_V2_LEN + TAG_V2_LEN : HEADER_LEN + (auth ? TAG_LEN : 0);
}

export function encodedLength(destinations: number, frameLen: number, auth: AuthMode): number {
  return fixedOverhead(auth) + DEST_ID_LEN * destinations + frameLen;
}

/** What a version 2 datagram is sealed with: the pair key of sender and receiver, and the next number. */
export interface PairSeal {
  key: SipKey;
  /** The sender's and the receiver's key epochs the pair key was derived from. */
  senderEpoch: number;
  receiverEpoch: number;
  /** Called once per datagram: the sequence number it carries (strictly increasing per key). */
  nextSeq(): number;
}

/** Version 2 header fields that select the key and order the datagram. */
export interface SealInfo {
  senderEpoch: number;
  receiverEpoch: number;
  seq: number;
}

function checkMessage(m: DataMessage): void {
  const bad = (field: string, why: string) => {
    throw new Error(`encode datagram: ${field} ${why}`);
  };
  if (!Number.isInteger(m.networkId) || m.networkId < 0 || m.networkId > MAX_NETWORK_ID)
    bad('networkId', `${m.networkId} is not a 24-bit ID`);
  if (!Number.isInteger(m.sourceEndpointId) || m.sourceEndpointId < 0 || m.sourceEndpointId > 0xffffffff) {
    bad('sourceEndpointId', `${m.sourceEndpointId} is not a u32`);
  }
  if (m.destinations.length < 1 || m.destinations.length > MAX_DESTINATIONS)
    bad('destinations', `count ${m.destinations.length} not in 1..${MAX_DESTINATIONS}`);
  for (const id of m.destinations)
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) bad('destinations', `${id} is not a u32`);
  const minFrame = ETH_HLEN + (m.vnetHeader ? VNET_HDR_LEN : 0);
  if (m.frame.length < minFrame || m.frame.length > MAX_FRAME_LEN)
    bad('frame', `length ${m.frame.length} not in ${minFrame}..${MAX_FRAME_LEN}`);
}

/** The authentication of an encoded datagram: v1's cluster key, or a v2 pair key. */
export type WireAuth = WireKey | PairSeal;

export function authMode(auth: WireAuth | undefined): AuthMode {
  return auth === undefined ? false : auth instanceof WireKey ? true : 'v2';
}

/**
 * Encodes a datagram: version 1 without `auth` or with a cluster key, version 2 with a pair seal.
 * The message comes from the agent itself, so invalid fields throw (a bug, not input).
 */
export function encodeData(m: DataMessage, auth?: WireAuth): Buffer {
  checkMessage(m);
  const n = m.destinations.length;
  const mode = authMode(auth);
  const out = Buffer.allocUnsafe(encodedLength(n, m.frame.length, mode));
  out.writeUInt16BE(WIRE_MAGIC, 0);
  out[2] = mode === 'v2' ? WIRE_VERSION_2 : WIRE_VERSION;
  out[3] = WIRE_TYPE_DATA;
  out[4] = (m.vnetHeader ? FLAG_VNET_HDR : 0) | (mode === true ? FLAG_AUTH_TAG : 0);
  out[5] = m.networkId >>> 16;
  out[6] = (m.networkId >>> 8) & 0xff;
  out[7] = m.networkId & 0xff;
  out.writeUInt32BE(m.sourceEndpointId, 8);
  out.writeUInt16BE(n, 12);
  out.writeUInt16BE(m.frame.length, 14);
  let p = HEADER_LEN;
  if (mode === 'v2') {
    const seal = auth as PairSeal;
    const seq = seal.nextSeq();
    out.writeUInt32BE(seal.senderEpoch, 16);
    out.writeUInt32BE(seal.receiverEpoch, 20);
    out.writeUInt32BE(Math.floor(seq / 0x100000000), 24);
    out.writeUInt32BE(seq >>> 0, 28);
    p = HEADER_V2_LEN;
  }
  for (let i = 0; i < n; i++, p += DEST_ID_LEN) out.writeUInt32BE(m.destinations[i], p);
  out.set(m.frame, p);
  p += m.frame.length;
  if (mode === true) computeTag(auth as WireKey, out, p).copy(out, p);
  else if (mode === 'v2') sipTag((auth as PairSeal).key, out, 0, p, out, p);
  return out;
}

/** The version byte of what looks like a castnet datagram, or undefined (decoding says why). */
export function wireVersionOf(b: Uint8Array): number | undefined {
  return b.length >= HEADER_LEN && ((b[0] << 8) | b[1]) === WIRE_MAGIC ? b[2] : undefined;
}

interface Layout {
  vnetHeader: boolean;
  tagged: boolean;
  count: number;
  idsAt: number;
  frameEnd: number;
  end: number;
}

/** Checks the fixed header and the lengths of a datagram of `version`; reads no ID and no tag. */
function layout(b: Uint8Array, version: number): Result<Layout, WireError> {
  if (b.length < HEADER_LEN)
    return err(fieldError('truncated', 'header', `needs ${HEADER_LEN} bytes, got ${b.length}`));
  const magic = (b[0] << 8) | b[1];
  if (magic !== WIRE_MAGIC)
    return err(fieldError('bad-magic', 'magic', `0x${magic.toString(16)} is not castnet's 0x434e`));
  if (b[2] !== version)
    return err(fieldError('bad-version', 'version', `${b[2]} is not supported (want ${version})`));
  if (b[3] !== WIRE_TYPE_DATA)
    return err(fieldError('bad-type', 'type', `${b[3]} is not a known message type`));
  const flags = b[4];
  // Version 2 always carries its tag: the AUTH_TAG bit is version 1's alone.
  const known = version === WIRE_VERSION ? KNOWN_FLAGS : FLAG_VNET_HDR;
  if ((flags & ~known) !== 0)
    return err(fieldError('bad-flags', 'flags', `unknown bits 0x${(flags & ~known).toString(16)}`));
  const vnetHeader = (flags & FLAG_VNET_HDR) !== 0;
  const tagged = version === WIRE_VERSION_2 || (flags & FLAG_AUTH_TAG) !== 0;
  const count = (b[12] << 8) | b[13];
  if (count === 0) return err(fieldError('bad-count', 'destination_count', 'is 0'));
  const frameLen = (b[14] << 8) | b[15];
  const minFrame = ETH_HLEN + (vnetHeader ? VNET_HDR_LEN : 0);
  if (frameLen < minFrame)
    return err(fieldError('bad-length', 'frame_length', `${frameLen} < minimum ${minFrame}`));
  const mode: AuthMode = version === WIRE_VERSION_2 ? 'v2' : tagged;
  const want = encodedLength(count, frameLen, mode);
  if (b.length < want)
    return err(fieldError('truncated', 'datagram', `header announces ${want} bytes, got ${b.length}`));
  if (b.length > want)
    return err(
      fieldError(
        'trailing-bytes',
        'datagram',
        `${b.length - want} bytes after the ${tagged ? 'tag' : 'frame'}`,
      ),
    );
  const tagLen = mode === 'v2' ? TAG_V2_LEN : tagged ? TAG_LEN : 0;
  return ok({
    vnetHeader,
    tagged,
    count,
    idsAt: mode === 'v2' ? HEADER_V2_LEN : HEADER_LEN,
    frameEnd: want - tagLen,
    end: want,
  });
}

/** The message of a datagram whose layout and tag were checked. */
function message(b: Uint8Array, l: Layout): DataMessage {
  const destinations = new Array<number>(l.count);
  for (let i = 0, p = l.idsAt; i < l.count; i++, p += DEST_ID_LEN) {
    destinations[i] = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
  }
  return {
    networkId: (b[5] << 16) | (b[6] << 8) | b[7],
    sourceEndpointId: ((b[8] << 24) | (b[9] << 16) | (b[10] << 8) | b[11]) >>> 0,
    destinations,
    vnetHeader: l.vnetHeader,
    frame: b.subarray(l.idsAt + DEST_ID_LEN * l.count, l.frameEnd),
  };
}

/**
 * Decodes and validates a version 1 datagram. With `keys` non-empty a valid tag under one of them is
 * required; with no keys, a tagged datagram is refused (a configuration mismatch must be loud).
 */
export function decodeData(b: Uint8Array, keys: readonly WireKey[] = []): Result<DataMessage, WireError> {
  const r = layout(b, WIRE_VERSION);
  if (!r.ok) return r;
  const l = r.value;
  if (keys.length > 0 && !l.tagged)
    return err(
      fieldError('missing-tag', 'flags', 'a key is configured but the datagram is not authenticated'),
    );
  if (keys.length === 0 && l.tagged)
    return err(
      fieldError('unexpected-tag', 'flags', 'the datagram is authenticated but no key is configured'),
    );
  if (l.tagged) {
    const tag = b.subarray(l.frameEnd, l.end);
    if (!keys.some((k) => timingSafeEqual(computeTag(k, b, l.frameEnd), tag))) {
      return err(fieldError('bad-tag', 'tag', 'does not verify under any configured key'));
    }
  }
  return ok(message(b, l));
}

/** The key-selecting fields of a version 2 header (the layout must have been checked). */
function sealInfo(b: Uint8Array): SealInfo | undefined {
  const hi = ((b[24] << 24) | (b[25] << 16) | (b[26] << 8) | b[27]) >>> 0;
  const lo = ((b[28] << 24) | (b[29] << 16) | (b[30] << 8) | b[31]) >>> 0;
  const seq = hi * 0x100000000 + lo;
  if (seq > MAX_SEQ) return undefined;
  return {
    senderEpoch: ((b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19]) >>> 0,
    receiverEpoch: ((b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23]) >>> 0,
    seq,
  };
}

/** Resolves a version 2 datagram's epochs to the pair key (and whatever the caller keeps with it). */
export type PairKeyLookup<K extends { rx: SipKey }> = (info: SealInfo) => Result<K, WireError>;

/**
 * Decodes and validates a version 2 datagram: layout, then the pair key its epochs select
 * (`keyFor`), then the tag; no ID is read before the tag verified. The caller checks the sequence
 * number against its replay window after this succeeds.
 */
export function decodeDataV2<K extends { rx: SipKey }>(
  b: Uint8Array,
  keyFor: PairKeyLookup<K>,
): Result<{ message: DataMessage; seal: SealInfo; key: K }, WireError> {
  const r = layout(b, WIRE_VERSION_2);
  if (!r.ok) return r;
  const l = r.value;
  const seal = sealInfo(b);
  if (!seal) return err(fieldError('bad-seq', 'sequence', `above ${MAX_SEQ}`));
  const key = keyFor(seal);
  if (!key.ok) return key;
  if (!sipVerify(key.value.rx, b, 0, l.frameEnd, l.frameEnd))
    return err(fieldError('bad-tag', 'tag', 'does not verify under the pair key of its epochs'));
  return ok({ message: message(b, l), seal, key: key.value });
}
