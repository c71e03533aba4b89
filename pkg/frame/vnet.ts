// struct virtio_net_hdr (10 bytes), which AF_PACKET with PACKET_VNET_HDR puts in front of every frame.
// Frames from veths carry partial checksums (NEEDS_CSUM: the receiver's stack finishes them), so the
// header travels with the frame end to end and castnet never rewrites the checksum fields.
import { err, fieldError, ok, type FieldError, type Result } from './result.js';

export const VNET_HDR_LEN = 10;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_F_DATA_VALID = 2;
export const VNET_GSO_NONE = 0;

export interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** Host byte order is little-endian on every platform castnet runs on (virtio 1.0 is LE too). */
export function parseVnetHeader(b: Uint8Array, off = 0): Result<VnetHeader, FieldError<'truncated'>> {
  if (b.length - off < VNET_HDR_LEN) {
    return err(
      fieldError('truncated', 'virtio_net_hdr', `needs ${VNET_HDR_LEN} bytes, got ${b.length - off}`),
    );
  }
  const u16 = (i: number) => b[off + i] | (b[off + i + 1] << 8);
  return ok({
    flags: b[off],
    gsoType: b[off + 1],
    hdrLen: u16(2),
    gsoSize: u16(4),
    csumStart: u16(6),
    csumOffset: u16(8),
  });
}

export function encodeVnetHeader(
  h: VnetHeader,
  out: Uint8Array = new Uint8Array(VNET_HDR_LEN),
  off = 0,
): Uint8Array {
  out[off] = h.flags;
  out[off + 1] = h.gsoType;
  const put = (i: number, v: number) => {
    out[off + i] = v & 0xff;
    out[off + i + 1] = (v >> 8) & 0xff;
  };
  put(2, h.hdrLen);
  put(4, h.gsoSize);
  put(6, h.csumStart);
  put(8, h.csumOffset);
  return out;
}

/** A header saying "nothing to do": what the agent prepends to frames it builds itself (queries, ARP replies). */
export const EMPTY_VNET_HEADER: Readonly<VnetHeader> = Object.freeze({
  flags: 0,
  gsoType: VNET_GSO_NONE,
  hdrLen: 0,
  gsoSize: 0,
  csumStart: 0,
  csumOffset: 0,
});

export function needsChecksum(h: VnetHeader): boolean {
  return (h.flags & VNET_F_NEEDS_CSUM) !== 0;
}
