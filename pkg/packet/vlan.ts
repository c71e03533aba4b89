// Puts back the 802.1Q tag that the kernel moved out of a captured frame. Pure.
//
// On receive, the kernel strips a VLAN tag from the frame into skb metadata before any AF_PACKET
// socket sees it (skb_vlan_untag), and veth offload may never have put it in the bytes. The tag
// comes back as PACKET_AUXDATA; without re-inserting it, a VM's tagged frame would be forwarded
// untagged, into the wrong VLAN.
import { ETH_P_8021Q, VLAN_TAG_LEN } from '../frame/ethernet.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_HDR_LEN } from '../frame/vnet.js';

const MAC_ADDRS_LEN = 12;

/**
 * `frame` (virtio_net_hdr + Ethernet) with a VLAN tag inserted after the MAC addresses. Offsets
 * in the virtio_net_hdr that count from the Ethernet header move by the tag's 4 bytes.
 */
export function withVlanTag(frame: Uint8Array, tci: number, tpid = ETH_P_8021Q): Buffer {
  const at = VNET_HDR_LEN + MAC_ADDRS_LEN;
  if (frame.length < at + 2) {
    throw new Error(`frame of ${frame.length} bytes: too short to carry a VLAN tag`);
  }
  const out = Buffer.allocUnsafe(frame.length + VLAN_TAG_LEN);
  out.set(frame.subarray(0, at), 0);
  out.writeUInt16BE(tpid, at);
  out.writeUInt16BE(tci, at + 2);
  out.set(frame.subarray(at), at + VLAN_TAG_LEN);
  if (out[0] & VNET_F_NEEDS_CSUM) out.writeUInt16LE(out.readUInt16LE(6) + VLAN_TAG_LEN, 6); // csum_start
  if (out[1] !== VNET_GSO_NONE) out.writeUInt16LE(out.readUInt16LE(2) + VLAN_TAG_LEN, 2); // hdr_len
  return out;
}
