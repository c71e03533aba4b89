// The underlay health probe (docs/underlay-health.md): a small fixed header, authenticated with the
// cluster's datagram key when there is one, padded to the size under test. A reply is the bare
// header: never larger than the probe it answers, so answering cannot amplify anything. Decoding is
// strict, cheapest checks first, and never throws: untrusted input is a typed error, counted by code.
import { timingSafeEqual } from 'node:crypto';
import { err, fieldError, ok, type FieldError, type Result } from '../../frame/result.js';
import { computeTag, TAG_LEN, type WireKey } from '../../wire/index.js';

export const PROBE_MAGIC = 0x4348; // "CH": never a data datagram ("CN"), even on a shared port
export const PROBE_VERSION = 1;
export const PROBE_HEADER_LEN = 12;
const TYPE_PROBE = 1;
const TYPE_REPLY = 2;
const FLAG_AUTH = 0x01;

export type ProbeKind = 'probe' | 'reply';

export interface ProbeMessage {
  kind: ProbeKind;
  /** The prober's sequence number, echoed in the reply. */
  seq: number;
  /** A probe: its own length. A reply: the length of the probe it answers, as that arrived. */
  probeLength: number;
}

export type ProbeErrorCode =
  | 'truncated'
  | 'bad-magic'
  | 'bad-version'
  | 'bad-type'
  | 'bad-flags'
  | 'bad-length'
  | 'missing-tag'
  | 'unexpected-tag'
  | 'bad-tag';

export type ProbeError = FieldError<ProbeErrorCode>;

/** The smallest datagram of each kind: the header, plus the tag when authenticated. */
export function minProbeLength(auth: boolean): number {
  return PROBE_HEADER_LEN + (auth ? TAG_LEN : 0);
}

function encode(kind: ProbeKind, seq: number, probeLength: number, size: number, key?: WireKey): Buffer {
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new Error(`probe seq ${seq}: not a u32`);
  const min = minProbeLength(key !== undefined);
  if (!Number.isInteger(size) || size < min || size > 0xffff)
    throw new Error(`probe size ${size}: not in ${min}..65535`);
  const b = Buffer.alloc(size);
  b.writeUInt16BE(PROBE_MAGIC, 0);
  b[2] = PROBE_VERSION;
  b[3] = kind === 'probe' ? TYPE_PROBE : TYPE_REPLY;
  b[4] = key ? FLAG_AUTH : 0;
  b.writeUInt16BE(probeLength, 6);
  b.writeUInt32BE(seq, 8);
  // The tag covers the header, which states the length: padding is zeros and carries nothing.
  if (key) computeTag(key, b, PROBE_HEADER_LEN).copy(b, PROBE_HEADER_LEN);
  return b;
}

/** A probe of exactly `size` bytes (UDP payload). */
export function encodeProbe(seq: number, size: number, key?: WireKey): Buffer {
  return encode('probe', seq, size, size, key);
}

/** The reply to `probe`: the header alone, so never larger than the probe. */
export function encodeReply(probe: ProbeMessage, key?: WireKey): Buffer {
  return encode('reply', probe.seq, probe.probeLength, minProbeLength(key !== undefined), key);
}

/** Decodes a probe or reply; with `key`, only tagged ones under it pass, without, only untagged. */
export function decodeProbeMessage(b: Uint8Array, key?: WireKey): Result<ProbeMessage, ProbeError> {
  const bad = (code: ProbeErrorCode, field: string, reason: string) => err(fieldError(code, field, reason));
  if (b.length < PROBE_HEADER_LEN)
    return bad('truncated', 'length', `${b.length} bytes, a probe has at least ${PROBE_HEADER_LEN}`);
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (v.readUInt16BE(0) !== PROBE_MAGIC) return bad('bad-magic', 'magic', 'not a castnet health probe');
  if (v[2] !== PROBE_VERSION) return bad('bad-version', 'version', `${v[2]} is not ${PROBE_VERSION}`);
  const type = v[3];
  if (type !== TYPE_PROBE && type !== TYPE_REPLY) return bad('bad-type', 'type', `${type} is unknown`);
  const flags = v[4]!;
  if ((flags & ~FLAG_AUTH) !== 0 || v[5] !== 0) return bad('bad-flags', 'flags', `0x${flags.toString(16)}`);
  const tagged = (flags & FLAG_AUTH) !== 0;
  if (key && !tagged) return bad('missing-tag', 'flags', 'this cluster authenticates probes');
  if (!key && tagged) return bad('unexpected-tag', 'flags', 'this agent has no key to check the tag');
  const kind: ProbeKind = type === TYPE_PROBE ? 'probe' : 'reply';
  const probeLength = v.readUInt16BE(6);
  const min = minProbeLength(tagged);
  const want = kind === 'probe' ? probeLength : min;
  if (v.length !== want || probeLength < min)
    return bad('bad-length', 'length', `${v.length} bytes, the header says ${probeLength}`);
  if (key && !timingSafeEqual(computeTag(key, v, PROBE_HEADER_LEN), v.subarray(PROBE_HEADER_LEN, min)))
    return bad('bad-tag', 'tag', 'not made with this cluster key');
  return ok({ kind, seq: v.readUInt32BE(8), probeLength });
}
