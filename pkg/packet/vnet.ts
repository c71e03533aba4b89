// The virtio_net_hdr that AF_PACKET with PACKET_VNET_HDR puts before every frame, on read and on
// write. It carries checksum and segmentation offload state: frames from a pod's veth usually have
// an unfinished L4 checksum (NEEDS_CSUM), which only stays valid if this header travels with them.

export const VNET_HDR_LEN = 10;
export const VNET_HDR_F_NEEDS_CSUM = 1;
export const VNET_HDR_F_DATA_VALID = 2;
export const VNET_HDR_GSO_NONE = 0;

export interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  /** Where the checksum computation starts, from the start of the Ethernet frame. */
  csumStart: number;
  /** Where the checksum goes, from csumStart. */
  csumOffset: number;
}

export function readVnetHeader(buf: Uint8Array): VnetHeader {
  if (buf.length < VNET_HDR_LEN) {
    throw new Error(`frame of ${buf.length} bytes: shorter than the ${VNET_HDR_LEN}-byte virtio_net_hdr`);
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, VNET_HDR_LEN);
  return {
    flags: b[0],
    gsoType: b[1],
    hdrLen: b.readUInt16LE(2),
    gsoSize: b.readUInt16LE(4),
    csumStart: b.readUInt16LE(6),
    csumOffset: b.readUInt16LE(8),
  };
}

/** `frame` (from its Ethernet header) behind a header that asks for no offload. */
export function withPlainVnetHeader(frame: Uint8Array): Buffer {
  const out = Buffer.alloc(VNET_HDR_LEN + frame.length);
  out.set(frame, VNET_HDR_LEN);
  return out;
}
