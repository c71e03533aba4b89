// struct virtio_net_hdr (10 bytes), which AF_PACKET with PACKET_VNET_HDR puts in front of every frame.
// Frames from veths carry partial checksums (NEEDS_CSUM: the receiver's stack finishes them), so the
// header travels with the frame end to end and castnet never rewrites the checksum fields; it only
// moves the offsets when it inserts a VLAN tag (pkg/packet/vlan.ts). Tests read headers with
// test/harness/vnet.ts.

export const VNET_HDR_LEN = 10;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_GSO_NONE = 0;
