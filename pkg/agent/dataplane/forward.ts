// What the agent does with one frame from a local endpoint, and with one datagram from the
// underlay. Pure: it reads the DirectoryIndex and returns actions; pkg/agent/dataplane/dataplane.ts
// performs them. Every frame or datagram that is not delivered gets a drop reason, which is counted.
import { ETH_P_ARP, ETH_P_IPV6, IPPROTO_ICMPV6, parseFrame, type ParsedFrame } from '../../frame/ethernet.js';
import { buildArpReply } from '../../frame/build.js';
import { VNET_HDR_LEN } from '../../frame/vnet.js';
import type { NodeRecord } from '../../lookup/port.js';
import {
  announcedAddress,
  arpTarget,
  checkSource,
  receiveTargets,
  type Delivery,
  type Resolver,
} from '../../resolve/index.js';
import type { IndexedEndpoint } from '../../resolve/directory-index.js';
import {
  decodeData,
  decodeDataV2,
  wireVersionOf,
  WIRE_VERSION,
  WIRE_VERSION_2,
  type DataMessage,
  type WireKey,
} from '../../wire/index.js';
import type { Keyring } from './keyring.js';
import { classifyFrame, type PolicedKind, type Policer } from './policer.js';

export type LocalAction = (
  | {
      kind: 'drop';
      reason: string;
      /** Over the sender's rate limit for this kind of frame (pkg/agent/dataplane/policer.ts). */
      policed?: PolicedKind;
    }
  /** An IGMP/MLD message for the membership table (the agent is the querier: not forwarded). */
  | { kind: 'membership'; frame: ParsedFrame }
  /** The agent answers an ARP request from its directory: inject `reply` back to the sender. */
  | { kind: 'arp-reply'; reply: Uint8Array }
  | { kind: 'forward'; delivery: Delivery }
) & {
  /** The sender announced that it now holds this allowed address (see resolve/address-pairs.ts). */
  announced?: string;
};

const ETH_P_RARP = 0x8035;
const ICMPV6_NEIGHBOR_ADVERT = 136;

/**
 * Whether `bytes` (virtio_net_hdr + untagged Ethernet frame) is a host announcing that it is now
 * here, from `mac`: QEMU's RARP after a live migration, a gratuitous ARP (sender IP = target IP),
 * or an unsolicited neighbour advertisement (to ff02::1). This, not any frame, activates an
 * endpoint (vm-handoff): a migration target's pod sends frames with the VM's MAC before its guest
 * is there (its kernel's IPv6 DAD and MLD reports between the CNI ADD and KubeVirt's bridge
 * binding), and the in-pod bridge sends its own; none of them is the VM arriving.
 */
export function isAnnouncement(bytes: Uint8Array, mac: Uint8Array): boolean {
  const e = VNET_HDR_LEN;
  if (bytes.length < e + 14) return false;
  for (let i = 0; i < 6; i++) if (bytes[e + 6 + i] !== mac[i]) return false;
  const type = (bytes[e + 12]! << 8) | bytes[e + 13]!;
  if (type === ETH_P_RARP) return true;
  const p = e + 14;
  if (type === ETH_P_ARP) {
    if (bytes.length < p + 28) return false;
    for (let i = 0; i < 4; i++) if (bytes[p + 14 + i] !== bytes[p + 24 + i]) return false;
    return true;
  }
  if (type === ETH_P_IPV6) {
    // Next header ICMPv6, destination ff02::1, type 136 (an NA sent to all nodes is unsolicited).
    if (bytes.length < p + 41 || bytes[p + 6] !== IPPROTO_ICMPV6) return false;
    if (bytes[p + 24] !== 0xff || bytes[p + 25] !== 0x02 || bytes[p + 39] !== 1) return false;
    for (let i = 26; i < 39; i++) if (bytes[p + i] !== 0) return false;
    return bytes[p + 40] === ICMPV6_NEIGHBOR_ADVERT;
  }
  return false;
}

/** The policer and the time (ms) of the capture batch; absent, nothing is rate-limited. */
export interface Policing {
  policer: Policer;
  nowMs: number;
}

/**
 * Decides the fate of `bytes` (virtio_net_hdr + Ethernet frame) captured from local endpoint `sender`.
 * The endpoint's rate limits come first, before parsing: a policed frame costs a few byte reads.
 */
export function decideLocalFrame(
  resolver: Resolver,
  sender: IndexedEndpoint | undefined,
  bytes: Uint8Array,
  policing?: Policing,
): LocalAction {
  if (!sender) return { kind: 'drop', reason: 'unknown-endpoint' };
  const kind = policing && classifyFrame(bytes);
  if (
    kind &&
    !policing.policer.admit(sender.endpointId, kind, sender.network.spec.rateLimits, policing.nowMs)
  )
    return { kind: 'drop', reason: `policed:${kind}`, policed: kind };
  const parsed = parseFrame(bytes, VNET_HDR_LEN);
  if (!parsed.ok) return { kind: 'drop', reason: `malformed:${parsed.error.code}` };
  const f = parsed.value;
  const spoof = checkSource(sender, f);
  if (spoof) return { kind: 'drop', reason: spoof.code };
  const announced = announcedAddress(sender.allowedAddresses, f);
  if (!announced) return forward(resolver, sender, f, bytes);
  // A shared address moved: every endpoint of the network hears it, even where broadcast is off, or
  // their neighbour caches keep sending to the previous holder.
  const r = resolver.flood(sender);
  if (!r.ok || (r.value.local.length === 0 && r.value.remote.length === 0))
    return { kind: 'drop', reason: r.ok ? 'no-members' : r.error.code, announced };
  return { kind: 'forward', delivery: r.value, announced };
}

function forward(
  resolver: Resolver,
  sender: IndexedEndpoint,
  f: ParsedFrame,
  bytes: Uint8Array,
): LocalAction {
  if (f.kind === 'igmp' || f.kind === 'mld') return { kind: 'membership', frame: f };
  if (f.arp) {
    const target = arpTarget(resolver.index, sender, f.arp);
    if (target) return { kind: 'arp-reply', reply: buildArpReply(f.arp, target.mac, f.vlans) };
  }
  const r = resolver.resolveFrame(sender, f, bytes);
  if (!r.ok) return { kind: 'drop', reason: r.error.code };
  if (r.value.local.length === 0 && r.value.remote.length === 0)
    return { kind: 'drop', reason: 'no-members' };
  return { kind: 'forward', delivery: r.value };
}

export type RemoteAction =
  | { kind: 'drop'; reason: string; count: number }
  | {
      kind: 'deliver';
      targets: IndexedEndpoint[];
      /** virtio_net_hdr + frame, ready to inject. */
      frame: Uint8Array;
      vnetHeader: boolean;
      /** Listed IDs that were not delivered (unknown, other network, duplicate). */
      rejectedIds: number;
      /** Sealed with a version 2 pair key (and admitted by its replay window). */
      sealed: boolean;
    };

/**
 * Decides what to do with a datagram from `from` on the underlay. Only known nodes are heard; the
 * datagram is validated in full (version, lengths, key, tag, replay window) before any ID is looked
 * at. With a keyring (wire format version 2), a peer that advertises version 2 is heard only in
 * version 2, and the keyring's replay window records each accepted sequence number (its one side
 * effect); without one, only version 1 under `keys`.
 */
export function decideDatagram(
  resolver: Resolver,
  nodesByAddress: ReadonlyMap<string, NodeRecord>,
  from: { address: string; port: number },
  data: Uint8Array,
  keys: readonly WireKey[],
  keyring?: Keyring,
): RemoteAction {
  const node = nodesByAddress.get(from.address);
  if (!node || node.port !== from.port) return drop('unknown-sender');
  const version = wireVersionOf(data);
  let m: DataMessage;
  if (keyring && version === WIRE_VERSION_2) {
    const r = decodeDataV2(data, (info) => keyring.open(node.name, info));
    if (!r.ok) return drop(`bad-datagram:${r.error.code}`);
    const verdict = keyring.admit(r.value.key, r.value.seal.seq);
    if (verdict !== 'ok') return drop(verdict);
    m = r.value.message;
  } else {
    if (keyring?.speaksV2(node.name) && version === WIRE_VERSION) return drop('v1-from-v2-peer');
    const r = decodeData(data, keys);
    if (!r.ok) return drop(`bad-datagram:${r.error.code}`);
    m = r.value;
  }
  const t = receiveTargets(resolver.index, m.networkId, m.destinations);
  if (!t.networkKnown) return drop('unknown-network');
  if (t.deliver.length === 0) return drop('unknown-endpoint-id');
  return {
    kind: 'deliver',
    targets: t.deliver,
    frame: m.frame,
    vnetHeader: m.vnetHeader,
    rejectedIds: t.unknownIds + t.duplicateIds,
    sealed: version === WIRE_VERSION_2,
  };
}

const drop = (reason: string): RemoteAction => ({ kind: 'drop', reason, count: 1 });
