// Builds the lookup port's Directory from the watch caches of castnet's three kinds. Pure. Reports
// arrive already converted (once per version, as they enter the cache), so a change to one node's
// report out of a thousand costs one conversion and a flatten, not a thousand conversions.
import { toGroupSpec, toNetworkSpec, type NodeDirectory } from './convert.js';
import type { MulticastGroup, VirtualNetwork } from '../../k8s/types.js';
import type { Directory, EndpointRecord, MembershipRecord, NodeRecord, SourceFilter } from '../port.js';

/** What this node's agent wants its report to say; it overrides the cached copy of its own report. */
export interface OwnState {
  node?: NodeRecord;
  endpoints?: EndpointRecord[];
  memberships?: MembershipRecord[];
}

/**
 * The directory of the cached networks and groups and the nodes' converted reports, with this
 * node's part (when `own.node` is set) taken from the agent's own state where it has one: it is newer
 * than the apiserver's copy, and stays right while the apiserver is unreachable.
 */
export function buildDirectory(
  networks: readonly VirtualNetwork[],
  groups: readonly MulticastGroup[],
  reports: Iterable<NodeDirectory>,
  own: OwnState,
): Directory {
  const self = own.node?.name;
  const parts: NodeDirectory[] = [];
  let cached: NodeDirectory | undefined;
  for (const p of reports) {
    if (p.node.name === self) cached = p;
    else parts.push(p);
  }
  if (self) {
    parts.push({
      node: own.node!,
      endpoints: own.endpoints ?? cached?.endpoints ?? [],
      memberships: own.memberships ?? cached?.memberships ?? [],
    });
  }
  return {
    networks: networks.map(toNetworkSpec),
    nodes: parts.map((p) => p.node),
    endpoints: parts.flatMap((p) => p.endpoints),
    groups: groups.map(toGroupSpec),
    memberships: parts.flatMap((p) => p.memberships),
  };
}

/**
 * Whether a node's report gives an underlay address that is not its Node's own (status.addresses,
 * InternalIP or ExternalIP): such a report would point every agent at a host its node does not
 * own. `addressesOf` undefined for a node: no Node object known, so nothing to compare with (the
 * admission policy lets an agent write only its own node's report, and that Node exists).
 */
export function foreignUnderlay(
  report: NodeDirectory,
  addressesOf: (node: string) => readonly string[] | undefined,
): boolean {
  const own = addressesOf(report.node.name);
  return own !== undefined && !own.includes(report.node.address);
}

/** The filter of nearly every membership (IGMPv2/MLDv1 joins): one shared, frozen copy. */
const ANY_SOURCE = Object.freeze({
  mode: 'exclude',
  sources: Object.freeze([]) as unknown as string[],
}) as SourceFilter;

/**
 * Most distinct strings the intern table keeps. Group addresses are the pods' choice and the table
 * outlives the reports that brought them: without a cap, joining ever new groups would grow it
 * without end. Past the cap it starts over (a string interned again is only a second copy).
 */
export const MAX_INTERNED = 65536;

/**
 * Makes a converted report cheaper to hold, in place: repeated strings (network, node and group
 * names arrive as a fresh string per record from JSON) become one shared copy each, and the common
 * any-source filter is shared. At a thousand nodes this is a good part of the agent's cache.
 */
export function compactNodeDirectory(d: NodeDirectory, strings: Map<string, string>): NodeDirectory {
  const intern = (s: string): string => {
    const known = strings.get(s);
    if (known !== undefined) return known;
    if (strings.size >= MAX_INTERNED) strings.clear();
    strings.set(s, s);
    return s;
  };
  d.node.name = intern(d.node.name);
  for (const e of d.endpoints) {
    e.network = intern(e.network);
    e.node = intern(e.node);
  }
  for (const m of d.memberships) {
    m.network = intern(m.network);
    m.node = intern(m.node);
    m.group = intern(m.group);
    if (m.filter.mode === 'exclude' && m.filter.sources.length === 0) m.filter = ANY_SOURCE;
  }
  return d;
}

const byKey = <T>(xs: T[], key: (x: T) => string): T[] =>
  [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

/** JSON with object keys sorted: the apiserver returns keys in its own order. */
function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** A node's records in a canonical form, to tell whether the stored report says what we want. */
export function canonicalNodeDirectory(d: NodeDirectory): string {
  return stableJson({
    node: d.node,
    endpoints: byKey(d.endpoints, (e) => `${e.network}/${e.endpointId}`),
    memberships: byKey(d.memberships, (m) => `${m.network}/${m.group}/${m.endpointId}/${m.via ?? ''}`),
  });
}
