// MTU handling. A datagram never exceeds the underlay MTU and a frame is never truncated: a long ID
// list is split across datagrams (each carrying the whole frame); a frame that cannot fit even with
// one ID is refused with 'frame-too-large' (the agent counts and drops it). The agent prevents the
// latter by giving endpoints the MTU from endpointMtu().
import { err, fieldError, ok, type Result } from '../frame/result.js';
import { ETH_HLEN, VLAN_TAG_LEN } from '../frame/ethernet.js';
import { VNET_HDR_LEN } from '../frame/vnet.js';
import {
  authMode,
  DEST_ID_LEN,
  encodeData,
  encodedLength,
  fixedOverhead,
  MAX_DESTINATIONS,
  type AuthMode,
  type DataMessage,
  type WireAuth,
  type WireError,
} from './format.js';

export const IPV4_UDP_OVERHEAD = 28;
export const IPV6_UDP_OVERHEAD = 48;

/** The UDP payload that fits in one underlay packet. */
export function udpPayloadBudget(underlayMtu: number, family: 4 | 6): number {
  return underlayMtu - (family === 4 ? IPV4_UDP_OVERHEAD : IPV6_UDP_OVERHEAD);
}

export interface EndpointMtuOptions {
  family: 4 | 6;
  /** The largest authentication the node may send with (version 2's is the largest). */
  auth: AuthMode;
  vnetHeader: boolean;
  /** VLAN tags the endpoint may send (each adds 4 bytes to its frames). */
  vlanTags?: number;
  /** Destination IDs that must fit next to a full-size frame in one datagram (default 1). */
  idsPerDatagram?: number;
}

/** The largest endpoint (L3) MTU whose full-size frames still fit one datagram with `idsPerDatagram` IDs. */
export function endpointMtu(underlayMtu: number, o: EndpointMtuOptions): number {
  const overhead =
    fixedOverhead(o.auth) +
    DEST_ID_LEN * (o.idsPerDatagram ?? 1) +
    (o.vnetHeader ? VNET_HDR_LEN : 0) +
    ETH_HLEN +
    VLAN_TAG_LEN * (o.vlanTags ?? 0);
  return udpPayloadBudget(underlayMtu, o.family) - overhead;
}

/** How many destination IDs fit next to a frame of `frameLen` bytes in `budget` bytes (0: none). */
export function idsPerDatagram(budget: number, frameLen: number, auth: AuthMode): number {
  const room = budget - encodedLength(0, frameLen, auth);
  return Math.max(0, Math.min(MAX_DESTINATIONS, Math.floor(room / DEST_ID_LEN)));
}

/**
 * Encodes the datagrams that carry `m` to all of `m.destinations` on one node within `budget` bytes
 * of UDP payload: one datagram when it fits, else the ID list split evenly over the fewest datagrams.
 */
export function encapsulate(m: DataMessage, budget: number, auth?: WireAuth): Result<Buffer[], WireError> {
  const mode = authMode(auth);
  const perDatagram = idsPerDatagram(budget, m.frame.length, mode);
  if (perDatagram === 0) {
    return err(
      fieldError(
        'frame-too-large',
        'frame',
        `${m.frame.length} bytes plus ${encodedLength(1, 0, mode)} bytes of encapsulation exceed the ${budget}-byte budget`,
      ),
    );
  }
  const ids = m.destinations;
  if (ids.length <= perDatagram) return ok([encodeData(m, auth)]);
  const parts = Math.ceil(ids.length / perDatagram);
  const size = Math.ceil(ids.length / parts);
  const out: Buffer[] = [];
  for (let i = 0; i < ids.length; i += size)
    out.push(encodeData({ ...m, destinations: ids.slice(i, i + size) }, auth));
  return ok(out);
}
