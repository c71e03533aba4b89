// Test-side codec for struct virtio_net_hdr: tests build the headers they inject and read the ones
// the kernel hands to castnet's AF_PACKET sockets. The agent itself only needs the constants in
// pkg/frame/vnet.ts, so this stays out of the build.
import { err, fieldError, ok, type FieldError, type Result } from '../../pkg/frame/result.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_HDR_LEN } from '../../pkg/frame/vnet.js';

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

/** A header saying "nothing to do", as the agent prepends (zeroes) to frames it builds itself. */
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
