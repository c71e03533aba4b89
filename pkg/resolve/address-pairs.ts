// Allowed address pairs: addresses beyond its own that an endpoint may use, such as a VRRP virtual
// IP that several endpoints share and one at a time holds. Pure decisions over directory records and
// parsed frames; the agent performs the I/O (publishing claims, rebuilding the index).
//
// Who holds a shared address is what it last announced: the endpoint allowed the address whose
// claim (the time its agent saw it send a gratuitous ARP or unsolicited neighbour advertisement for
// the address) is newest. The directory index maps the address to that endpoint, so the ARP proxy
// answers with the current holder's MAC and never with the previous one's.
import { ARP_REQUEST, ARP_REPLY } from '../frame/build.js';
import { ICMPV6_NEIGHBOR_ADVERT, type ParsedFrame } from '../frame/ethernet.js';
import type { EndpointRecord } from '../lookup/port.js';

/** network -> shared address -> the endpoint record that holds it now. */
export type AddressHolders = Map<string, Map<string, EndpointRecord>>;

const key = (e: EndpointRecord) => `${e.node}/${e.endpointId}`;

/**
 * The holder of each claimed allowed address, per network. A claim of an address the endpoint was
 * not allowed is ignored. Equal claim times (two nodes' clocks, the same millisecond) fall to the
 * lower node/endpoint key: every agent picks the same holder from the same records.
 */
export function addressHolders(endpoints: readonly EndpointRecord[]): AddressHolders {
  const out: AddressHolders = new Map();
  const at = new Map<EndpointRecord, Map<string, number>>();
  for (const e of endpoints) {
    if (!e.claims?.length || !e.allowedAddresses?.length) continue;
    const allowed = new Set(e.allowedAddresses);
    let byAddress = out.get(e.network);
    for (const c of e.claims) {
      if (!allowed.has(c.address)) continue;
      let times = at.get(e);
      if (!times) at.set(e, (times = new Map()));
      times.set(c.address, c.at);
      if (!byAddress) out.set(e.network, (byAddress = new Map()));
      const cur = byAddress.get(c.address);
      const curAt = cur ? at.get(cur)!.get(c.address)! : -1;
      if (!cur || c.at > curAt || (c.at === curAt && key(e) < key(cur))) byAddress.set(c.address, e);
    }
  }
  return out;
}

/**
 * The allowed address a frame announces its sender now holds: a gratuitous ARP (request or reply
 * whose sender and target IP are the address, as keepalived sends on becoming master) or an
 * unsolicited neighbour advertisement for it. Undefined for anything else. `allowed` is the
 * sender's allowed addresses; the frame has passed the anti-spoofing check.
 */
export function announcedAddress(allowed: ReadonlySet<string>, frame: ParsedFrame): string | undefined {
  if (allowed.size === 0) return undefined;
  const arp = frame.arp;
  if (arp) {
    const gratuitous = (arp.op === ARP_REQUEST || arp.op === ARP_REPLY) && arp.senderIp === arp.targetIp;
    return gratuitous && allowed.has(arp.senderIp) ? arp.senderIp : undefined;
  }
  const nd = frame.ndp;
  if (nd?.type === ICMPV6_NEIGHBOR_ADVERT && nd.target && allowed.has(nd.target)) return nd.target;
  return undefined;
}
