// Group resolution: merges the nodes' reports (IGMP/MLD joins and the selector members each agent
// found on its node), static members, label selectors and nested groups into each MulticastGroup's
// member set. Pure: plain objects in, plain objects out.
//
// Selector members are what the agents report (and deliver to). The controller also applies the same
// rule (pkg/k8s/selector.ts) to the pods and VMIs it watches, so status is right before an agent's
// report catches up; both count once per endpoint.
//
// Nesting is a graph over groups (spec.nestedGroups by name, plus static members that are group
// addresses; an edge reaches every group declared at the target's address, as traffic does). The
// agent's rule decides (pkg/resolve/nesting.ts): a group whose nesting holds a cycle or is too deep is
// rejected, with no members, because the agents drop its traffic.
//
// Tenancy is the agent's rule too (pkg/resolve/tenancy.ts): a group whose namespace may not use its
// network, or that loses its address to another namespace's older group, has no members and says why
// (Accepted=False); edges and static members never cross into another namespace.
import type { SourceFilter } from '../lookup/port.js';
import type {
  GroupCounts,
  GroupMember,
  LabeledObject,
  MembershipReport,
  MulticastGroup,
  ReportEndpoint,
  ReportMembership,
  Via,
  VirtualNetwork,
} from '../k8s/types.js';
import { MAX_GROUP_DEPTH, NestingGraph, reachableGroups, type NestingProblem } from '../resolve/nesting.js';
import { toSourceFilter, fromSourceFilter, groupClaim } from '../lookup/kubernetes/convert.js';
import { judgeAddress, staticMemberAllowed, type GroupStanding } from '../resolve/tenancy.js';
import { canonicalAddress, cidrFamily, addressFamily, isGroupAddress } from '../netaddr/address.js';
import type { DesiredCondition } from '../k8s/conditions.js';
import { ANY_SOURCE, mergeFilters } from './filter.js';
import { groupSelects, hasSelectors, type SelectedKind } from '../k8s/selector.js';

export interface ResolveInput {
  networks: VirtualNetwork[];
  groups: MulticastGroup[];
  reports: MembershipReport[];
  pods: LabeledObject[];
  vmis: LabeledObject[];
  /** Nodes whose reports count (see gc.ts); absent means every report counts. */
  liveNodes?: ReadonlySet<string>;
  /** Exclude endpoints whose pod is not in `pods` (deleted pods). Off where pods are not watched. */
  checkPods: boolean;
}

export interface ResolvedGroup {
  /** namespace/name */
  key: string;
  members: GroupMember[];
  counts: GroupCounts;
  conditions: DesiredCondition[];
}

/** An endpoint left out because its pod is gone. */
export interface StaleEndpoint {
  node: string;
  endpointID: number;
  network: string;
  pod: string;
}

export interface Resolution {
  groups: Map<string, ResolvedGroup>;
  stale: StaleEndpoint[];
}

/** An endpoint of a node's report, with its node. */
interface ReportedEndpoint extends ReportEndpoint {
  node: string;
}

interface Draft {
  ep: ReportedEndpoint;
  via: Via;
  group?: string;
  filter: SourceFilter;
}

type DraftSet = Map<string, Draft>;

interface Direct {
  drafts: DraftSet;
  /** Group keys this group nests. */
  edges: string[];
  unresolved: string[];
  /** Why a listed nested group is not followed. */
  missingNested: string[];
  /** Static members left out because another namespace holds them. */
  notAllowed: string[];
}

// When one endpoint is a member several ways, status shows the most deliberate one.
const VIA_RANK: Record<Via, number> = { static: 4, selector: 3, igmp: 2, mld: 2, nested: 1 };

export const groupKey = (g: MulticastGroup): string =>
  `${g.metadata.namespace ?? 'default'}/${g.metadata.name}`;
const epKey = (node: string, id: number): string => `${node}/${id}`;
const netKey = (network: string, x: string): string => `${network}|${x}`;

function addDraft(set: DraftSet, d: Draft): void {
  const key = epKey(d.ep.node, d.ep.endpointID);
  const prev = set.get(key);
  if (!prev) {
    set.set(key, d);
    return;
  }
  const filter = mergeFilters(prev.filter, d.filter);
  set.set(key, VIA_RANK[d.via] > VIA_RANK[prev.via] ? { ...d, filter } : { ...prev, filter });
}

/** endpoint key -> value, per lookup key: removable in O(1) when a report changes. */
type Bucket<V> = Map<string, V>;

function addTo<V>(m: Map<string, Bucket<V>>, k: string, ek: string, v: V): void {
  let b = m.get(k);
  if (!b) m.set(k, (b = new Map()));
  b.set(ek, v);
}

function removeFrom<V>(m: Map<string, Bucket<V>>, k: string, ek: string): void {
  const b = m.get(k);
  if (!b) return;
  b.delete(ek);
  if (b.size === 0) m.delete(k);
}

function addRef(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function removeRef(m: Map<string, Set<string>>, k: string, v: string): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/**
 * What one node's report put into the index, so a new version can take it out again. Keys are
 * recomputed on removal rather than stored: at 100,000 endpoints, stored key strings cost more than
 * the endpoints themselves.
 */
interface Contribution {
  report: MembershipReport;
  /** The report's endpoints that count, in index form. */
  endpoints: ReportedEndpoint[];
  stale: StaleEndpoint[];
}

/** Endpoints by lookup key. Nearly every key has one endpoint: a small array is far lighter than a Map. */
type EndpointList = ReportedEndpoint[];

function addEndpoint(m: Map<string, EndpointList>, k: string, ep: ReportedEndpoint): void {
  const list = m.get(k);
  if (list) list.push(ep);
  else m.set(k, [ep]);
}

function removeEndpoint(m: Map<string, EndpointList>, k: string, ep: ReportedEndpoint): void {
  const list = m.get(k);
  if (!list) return;
  const i = list.indexOf(ep);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) m.delete(k);
}

/** A reported membership: an IGMP/MLD join, or (via selector) an endpoint the agent's selectors chose. */
interface Join {
  ep: ReportedEndpoint;
  filter: SourceFilter;
  via?: 'selector';
}

/** The lookups group resolution needs, maintained incrementally. */
interface Lookup {
  byAddress: Map<string, EndpointList>;
  byPod: Map<string, EndpointList>;
  byVm: Map<string, EndpointList>;
  joins: Map<string, Bucket<Join>>;
  groupsByKey: Map<string, MulticastGroup>;
  groupsByAddress: Map<string, Set<string>>;
  pods: Map<string, LabeledObject>;
  vmis: Map<string, LabeledObject>;
  /** The tenancy verdict on a group (by key). */
  standing(key: string): GroupStanding;
  /** The acting groups at a network|address key, sorted: they share one namespace. */
  actingAt(addr: string): string[];
}

function directMembers(g: MulticastGroup, ix: Lookup): Direct {
  const ns = g.metadata.namespace ?? 'default';
  const net = g.spec.network;
  const drafts: DraftSet = new Map();
  const edges: string[] = [];
  const unresolved: string[] = [];
  const missingNested: string[] = [];
  /** Static members another namespace holds: never followed (tenancy). */
  const notAllowed: string[] = [];
  const address = canonicalAddress(g.spec.address);

  for (const j of ix.joins.get(netKey(net, address))?.values() ?? []) {
    addDraft(drafts, {
      ep: j.ep,
      via: j.via ?? (addressFamily(address) === 6 ? 'mld' : 'igmp'),
      filter: j.filter,
    });
  }
  for (const raw of g.spec.staticMembers ?? []) {
    const a = canonicalAddress(raw);
    if (isGroupAddress(a)) {
      const groups = ix.actingAt(netKey(net, a));
      const owner = groups.length
        ? (ix.groupsByKey.get(groups[0]!)!.metadata.namespace ?? 'default')
        : undefined;
      if (owner !== undefined && owner !== ns) {
        notAllowed.push(`static member ${a} is a group address of namespace "${owner}"`);
      } else if (groups.length) {
        edges.push(...groups);
      } else {
        // A group address with no MulticastGroup still has its IGMP/MLD joiners.
        for (const j of ix.joins.get(netKey(net, a))?.values() ?? []) {
          addDraft(drafts, { ep: j.ep, via: 'nested', group: a, filter: j.filter });
        }
      }
      continue;
    }
    const eps = ix.byAddress.get(netKey(net, a));
    if (!eps) unresolved.push(a);
    const own = eps?.filter((ep) => staticMemberAllowed(ns, ep)) ?? [];
    if (eps && own.length === 0) notAllowed.push(`static member ${a} is an endpoint of another namespace`);
    for (const ep of own) addDraft(drafts, { ep, via: 'static', filter: ANY_SOURCE });
  }
  const selectFrom = (
    which: SelectedKind,
    objects: Map<string, LabeledObject>,
    eps: Map<string, EndpointList>,
  ): void => {
    if (!g.spec.selectors?.[which]) return;
    for (const o of objects.values()) {
      if (!groupSelects(g, which, o)) continue;
      for (const ep of eps.get(netKey(net, `${o.namespace}/${o.name}`)) ?? []) {
        addDraft(drafts, { ep, via: 'selector', filter: ANY_SOURCE });
      }
    }
  };
  selectFrom('pods', ix.pods, ix.byPod);
  selectFrom('vmis', ix.vmis, ix.byVm);
  for (const name of g.spec.nestedGroups ?? []) {
    const key = `${ns}/${name}`;
    const nested = ix.groupsByKey.get(key);
    if (!nested) missingNested.push(`nested group "${name}" does not exist`);
    else if (nested.spec.network !== net) {
      missingNested.push(`nested group "${name}" is on network "${nested.spec.network}", not "${net}"`);
    } else {
      const standing = ix.standing(key);
      if (!standing.acts) missingNested.push(`nested group "${name}" does not act (${standing.reason})`);
      else edges.push(...ix.actingAt(netKey(net, canonicalAddress(nested.spec.address))));
    }
  }
  return { drafts, edges: [...new Set(edges)], unresolved, missingNested, notAllowed };
}

/** The members of an accepted group: its own, and those of every group its nesting reaches. */
function nestedDrafts(root: string, direct: (key: string) => Direct): DraftSet {
  const drafts: DraftSet = new Map(direct(root).drafts);
  for (const child of reachableGroups([root], (k) => direct(k).edges)) {
    if (child === root) continue;
    for (const d of direct(child).drafts.values()) {
      addDraft(drafts, {
        ep: d.ep,
        via: 'nested',
        group: d.via === 'nested' ? d.group : child,
        filter: d.filter,
      });
    }
  }
  return drafts;
}

function toMember(d: Draft): GroupMember {
  const filter = fromSourceFilter(d.filter);
  const e = d.ep;
  return {
    endpoint: e.ips?.[0] ?? e.mac,
    endpointID: e.endpointID,
    mac: e.mac,
    node: e.node,
    ...(e.pod ? { pod: `${e.pod.namespace}/${e.pod.name}` } : {}),
    ...(e.vm ? { vm: `${e.vm.namespace}/${e.vm.name}` } : {}),
    via: d.via,
    ...(d.group ? { group: d.group } : {}),
    ...(filter ? { filter } : {}),
  };
}

// Plain code-unit order: deterministic everywhere, and far cheaper than localeCompare at 10k groups.
const byNodeThenId = (a: GroupMember, b: GroupMember): number => {
  const an = a.node ?? '';
  const bn = b.node ?? '';
  return an < bn ? -1 : an > bn ? 1 : (a.endpointID ?? 0) - (b.endpointID ?? 0);
};

function countMembers(members: GroupMember[], unresolved: number): GroupCounts {
  const c: GroupCounts = {
    members: members.length,
    nodes: new Set(members.map((m) => m.node)).size,
    igmp: 0,
    mld: 0,
    static: 0,
    selector: 0,
    nested: 0,
    unresolved,
  };
  for (const m of members) c[m.via]++;
  return c;
}

function networkProblem(
  g: MulticastGroup,
  networks: Map<string, VirtualNetwork>,
): { reason: string; message: string } | undefined {
  const vn = networks.get(g.spec.network);
  if (!vn) return { reason: 'NetworkNotFound', message: `VirtualNetwork "${g.spec.network}" does not exist` };
  const fam = addressFamily(g.spec.address);
  const fams = new Set(vn.spec.subnets.map(cidrFamily));
  if (fam !== 'mac' && !fams.has(fam)) {
    return {
      reason: 'AddressFamilyMismatch',
      message: `spec.address ${g.spec.address} is IPv${fam} but VirtualNetwork "${vn.metadata.name}" has no IPv${fam} subnet`,
    };
  }
  if (vn.spec.multicast?.enabled === false) {
    return {
      reason: 'MulticastDisabled',
      message: `VirtualNetwork "${vn.metadata.name}" has spec.multicast.enabled=false`,
    };
  }
  return undefined;
}

const showPath = (p: string[]): string => p.join(' -> ');

function resolveOne(
  key: string,
  g: MulticastGroup,
  direct: (key: string) => Direct,
  nesting: NestingProblem<string> | undefined,
  networks: Map<string, VirtualNetwork>,
  standing: GroupStanding,
): ResolvedGroup {
  const own = direct(key);
  const drafts = nesting || !standing.acts ? new Map<string, Draft>() : nestedDrafts(key, direct);
  const members = [...drafts.values()].map(toMember).sort(byNodeThenId);
  const counts = countMembers(members, own.unresolved.length);
  const gen = g.metadata.generation;
  const cond = (type: string, ok: boolean, reason: string, message: string): DesiredCondition => ({
    type,
    status: ok ? 'True' : 'False',
    reason,
    message,
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
  });

  const netProblem = networkProblem(g, networks);
  const nestingCondition = !nesting
    ? cond('NestingValid', true, 'Valid', 'nested groups form no cycle')
    : nesting.code === 'cycle'
      ? cond(
          'NestingValid',
          false,
          'NestingCycle',
          `nesting cycle ${showPath(nesting.path)}: the group is rejected and its traffic dropped`,
        )
      : cond(
          'NestingValid',
          false,
          'NestingTooDeep',
          `nesting deeper than ${MAX_GROUP_DEPTH} levels: ${showPath(nesting.path)}: the group is rejected and its traffic dropped`,
        );
  const missing = [
    ...own.missingNested,
    ...own.notAllowed,
    ...own.unresolved.map((a) => `static member ${a} matches no endpoint on network "${g.spec.network}"`),
  ];
  const resolved = missing.length
    ? cond(
        'MembersResolved',
        false,
        own.missingNested.length
          ? 'NestedGroupNotFound'
          : own.notAllowed.length
            ? 'StaticMemberNotAllowed'
            : 'StaticMemberNotFound',
        missing.join('; '),
      )
    : cond('MembersResolved', true, 'Resolved', 'every static member and nested group resolved');
  const accepted = standing.acts
    ? cond('Accepted', true, 'Accepted', 'the namespace may use the network and owns the address')
    : cond('Accepted', false, standing.reason, `${standing.field}: ${standing.message}`);
  const summary = `${counts.members} members on ${counts.nodes} nodes`;
  const ready = netProblem
    ? cond('Ready', false, netProblem.reason, netProblem.message)
    : !standing.acts
      ? cond('Ready', false, accepted.reason, accepted.message)
      : nestingCondition.status === 'False'
        ? cond('Ready', false, nestingCondition.reason, nestingCondition.message)
        : cond('Ready', true, 'Resolved', summary);
  return { key, members, counts, conditions: [ready, accepted, resolved, nestingCondition] };
}

/**
 * The cluster's state as far as resolution is concerned, updated one object at a time. Each update
 * marks the groups it can affect; resolveDirty() recomputes only those (and the groups that nest
 * them), so one report write costs in proportion to what it touches, not to the cluster.
 */
export class GroupResolver implements Lookup {
  readonly byAddress = new Map<string, EndpointList>();
  readonly byPod = new Map<string, EndpointList>();
  readonly byVm = new Map<string, EndpointList>();
  readonly joins = new Map<string, Bucket<Join>>();
  readonly groupsByKey = new Map<string, MulticastGroup>();
  readonly groupsByAddress = new Map<string, Set<string>>();
  readonly pods = new Map<string, LabeledObject>();
  readonly vmis = new Map<string, LabeledObject>();
  private readonly networks = new Map<string, VirtualNetwork>();
  private readonly reports = new Map<string, MembershipReport>();
  private readonly contributions = new Map<string, Contribution>();
  /** pod namespace/name -> nodes whose reports have an endpoint of that pod */
  private readonly podRefs = new Map<string, Set<string>>();
  /** network|address -> groups with a static member of that endpoint address */
  private readonly staticRefs = new Map<string, Set<string>>();
  /** network|group address -> groups listing that group address as a static member */
  private readonly groupAddressRefs = new Map<string, Set<string>>();
  /** namespace/name -> groups nesting that group by name */
  private readonly nestedRefs = new Map<string, Set<string>>();
  /** namespace -> groups with selectors */
  private readonly selectorGroups = new Map<string, Set<string>>();
  private readonly groupsByNetwork = new Map<string, Set<string>>();
  private readonly endpointCounts = new Map<string, number>();
  private liveNodes?: ReadonlySet<string>;
  private readonly dirty = new Set<string>();
  /** Tenancy verdicts per network|address, for one resolveDirty pass. */
  private readonly standings = new Map<string, Map<string, GroupStanding>>();

  constructor(private readonly checkPods: boolean) {}

  // --- updates ---

  setNetwork(vn: VirtualNetwork): void {
    this.networks.set(vn.metadata.name, vn);
    this.markAll(this.groupsByNetwork.get(vn.metadata.name));
  }

  deleteNetwork(name: string): void {
    this.networks.delete(name);
    this.markAll(this.groupsByNetwork.get(name));
  }

  setGroup(g: MulticastGroup): void {
    const key = groupKey(g);
    this.unindexGroup(key);
    this.groupsByKey.set(key, g);
    const ns = g.metadata.namespace ?? 'default';
    const net = g.spec.network;
    const addr = netKey(net, canonicalAddress(g.spec.address));
    addRef(this.groupsByAddress, addr, key);
    addRef(this.groupsByNetwork, net, key);
    for (const raw of g.spec.staticMembers ?? []) {
      const a = canonicalAddress(raw);
      addRef(isGroupAddress(a) ? this.groupAddressRefs : this.staticRefs, netKey(net, a), key);
    }
    for (const n of g.spec.nestedGroups ?? []) addRef(this.nestedRefs, `${ns}/${n}`, key);
    if (hasSelectors(g)) addRef(this.selectorGroups, ns, key);
    this.dirty.add(key);
    this.markReferrers(key, addr);
  }

  deleteGroup(key: string): void {
    if (!this.groupsByKey.has(key)) return;
    this.unindexGroup(key);
    this.dirty.delete(key);
  }

  private unindexGroup(key: string): void {
    const g = this.groupsByKey.get(key);
    if (!g) return;
    const ns = g.metadata.namespace ?? 'default';
    const net = g.spec.network;
    const addr = netKey(net, canonicalAddress(g.spec.address));
    removeRef(this.groupsByAddress, addr, key);
    removeRef(this.groupsByNetwork, net, key);
    for (const raw of g.spec.staticMembers ?? []) {
      const a = canonicalAddress(raw);
      removeRef(isGroupAddress(a) ? this.groupAddressRefs : this.staticRefs, netKey(net, a), key);
    }
    for (const n of g.spec.nestedGroups ?? []) removeRef(this.nestedRefs, `${ns}/${n}`, key);
    removeRef(this.selectorGroups, ns, key);
    this.groupsByKey.delete(key);
    this.markReferrers(key, addr);
  }

  /**
   * Groups whose edges point at this group, by name or by address, must re-resolve, and so must the
   * groups declared at its address, which share its nesting verdict.
   */
  private markReferrers(key: string, addr: string): void {
    this.markAll(this.nestedRefs.get(key));
    this.markAll(this.groupAddressRefs.get(addr));
    this.markAll(this.groupsByAddress.get(addr));
  }

  setReport(r: MembershipReport): void {
    this.reports.set(r.spec.node, r);
    this.indexReport(r.spec.node);
  }

  deleteReport(node: string): void {
    this.reports.delete(node);
    this.indexReport(node);
  }

  setPod(p: LabeledObject): void {
    const key = `${p.namespace}/${p.name}`;
    const prev = this.pods.get(key);
    this.pods.set(key, p);
    if (!prev || prev.uid !== p.uid) this.reindexPod(key);
    if (!prev || !sameLabels(prev.labels, p.labels)) this.markAll(this.selectorGroups.get(p.namespace));
  }

  deletePod(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    if (!this.pods.delete(key)) return;
    this.reindexPod(key);
    this.markAll(this.selectorGroups.get(namespace));
  }

  setVmi(v: LabeledObject): void {
    const key = `${v.namespace}/${v.name}`;
    const prev = this.vmis.get(key);
    this.vmis.set(key, v);
    if (!prev || !sameLabels(prev.labels, v.labels)) this.markAll(this.selectorGroups.get(v.namespace));
  }

  deleteVmi(namespace: string, name: string): void {
    if (this.vmis.delete(`${namespace}/${name}`)) this.markAll(this.selectorGroups.get(namespace));
  }

  /** Nodes whose reports count; undefined means all. Re-indexes the reports whose standing changed. */
  setLiveNodes(live: ReadonlySet<string> | undefined): void {
    const before = this.liveNodes;
    this.liveNodes = live;
    for (const node of this.reports.keys()) {
      const was = !before || before.has(node);
      const is = !live || live.has(node);
      if (was !== is) this.indexReport(node);
    }
  }

  /** Marks every group for re-resolution (e.g. a periodic full resync). */
  markAllDirty(): void {
    for (const k of this.groupsByKey.keys()) this.dirty.add(k);
  }

  private markAll(keys: Iterable<string> | undefined): void {
    for (const k of keys ?? []) this.dirty.add(k);
  }

  private reindexPod(podKey: string): void {
    for (const node of [...(this.podRefs.get(podKey) ?? [])]) this.indexReport(node);
  }

  private indexReport(node: string): void {
    const old = this.contributions.get(node);
    if (old) {
      this.contributions.delete(node);
      for (const ep of old.endpoints) {
        this.endpointCounts.set(ep.network, (this.endpointCounts.get(ep.network) ?? 1) - 1);
        for (const a of endpointAddresses(ep)) removeEndpoint(this.byAddress, a, ep);
        if (ep.pod) removeEndpoint(this.byPod, podKeyOf(ep), ep);
        if (ep.vm) removeEndpoint(this.byVm, vmKeyOf(ep), ep);
      }
      for (const j of joinsOf(old)) removeFrom(this.joins, j.key, j.ek);
      for (const e of old.report.spec.endpoints ?? []) {
        if (e.pod) removeRef(this.podRefs, `${e.pod.namespace}/${e.pod.name}`, node);
      }
      this.touch(old);
    }
    const r = this.reports.get(node);
    if (!r) return;
    const c: Contribution = { report: r, endpoints: [], stale: [] };
    const counts = !this.liveNodes || this.liveNodes.has(node);
    for (const e of r.spec.endpoints ?? []) {
      if (e.pod) addRef(this.podRefs, `${e.pod.namespace}/${e.pod.name}`, node);
      if (!counts) continue;
      if (this.checkPods && e.pod) {
        const pod = this.pods.get(`${e.pod.namespace}/${e.pod.name}`);
        if (!pod || (pod.uid && e.pod.uid && pod.uid !== e.pod.uid)) {
          c.stale.push({
            node,
            endpointID: e.endpointID,
            network: e.network,
            pod: `${e.pod.namespace}/${e.pod.name}`,
          });
          continue;
        }
      }
      const ep: ReportedEndpoint = { ...e, node };
      c.endpoints.push(ep);
      this.endpointCounts.set(e.network, (this.endpointCounts.get(e.network) ?? 0) + 1);
      for (const a of endpointAddresses(ep)) addEndpoint(this.byAddress, a, ep);
      if (e.pod) addEndpoint(this.byPod, podKeyOf(ep), ep);
      if (e.vm) addEndpoint(this.byVm, vmKeyOf(ep), ep);
    }
    for (const j of joinsOf(c)) {
      const filter = toSourceFilter(j.m.filter);
      addTo(this.joins, j.key, j.ek, j.m.via ? { ep: j.ep, filter, via: j.m.via } : { ep: j.ep, filter });
    }
    this.contributions.set(node, c);
    this.touch(c);
  }

  /** Marks the groups that a report's contribution can affect. */
  private touch(c: Contribution): void {
    for (const j of joinsOf(c)) {
      this.markAll(this.groupsByAddress.get(j.key));
      this.markAll(this.groupAddressRefs.get(j.key));
    }
    for (const ep of c.endpoints) {
      for (const a of endpointAddresses(ep)) this.markAll(this.staticRefs.get(a));
      if (ep.pod) this.markAll(this.selectorGroups.get(ep.pod.namespace));
      if (ep.vm) this.markAll(this.selectorGroups.get(ep.vm.namespace));
    }
  }

  // --- queries ---

  standing(key: string): GroupStanding {
    const addr = this.addressOf(key);
    let verdicts = this.standings.get(addr);
    if (!verdicts) {
      const g = this.groupsByKey.get(key)!;
      const vn = this.networks.get(g.spec.network);
      verdicts = judgeAddress(
        [...(this.groupsByAddress.get(addr) ?? [])],
        (k) => groupClaim(this.groupsByKey.get(k)!),
        vn && { name: vn.metadata.name, allowedNamespaces: vn.spec.allowedNamespaces },
      );
      this.standings.set(addr, verdicts);
    }
    return verdicts.get(key)!;
  }

  actingAt(addr: string): string[] {
    return [...(this.groupsByAddress.get(addr) ?? [])].filter((k) => this.standing(k).acts).sort();
  }

  /** Endpoints counted per network (live ones only). */
  endpointsOn(network: string): number {
    return this.endpointCounts.get(network) ?? 0;
  }

  groupsOn(network: string): number {
    return this.groupsByNetwork.get(network)?.size ?? 0;
  }

  stale(): StaleEndpoint[] {
    return [...this.contributions.values()].flatMap((c) => c.stale);
  }

  /** Re-resolves the marked groups and every group that nests one of them; returns those results. */
  resolveDirty(): Map<string, ResolvedGroup> {
    const todo = new Set<string>();
    const queue = [...this.dirty];
    this.dirty.clear();
    while (queue.length) {
      const k = queue.pop()!;
      if (todo.has(k) || !this.groupsByKey.has(k)) continue;
      todo.add(k);
      // Groups at the same address share a verdict; groups nesting this one (by name or address) see it.
      const addr = this.addressOf(k);
      for (const other of [
        ...(this.groupsByAddress.get(addr) ?? []),
        ...(this.nestedRefs.get(k) ?? []),
        ...(this.groupAddressRefs.get(addr) ?? []),
      ]) {
        if (!todo.has(other)) queue.push(other);
      }
    }
    this.standings.clear();
    const directs = new Map<string, Direct>();
    const direct = (key: string): Direct => {
      let d = directs.get(key);
      if (!d) directs.set(key, (d = directMembers(this.groupsByKey.get(key)!, this)));
      return d;
    };
    const graph = new NestingGraph<string>((k) => direct(k).edges);
    const out = new Map<string, ResolvedGroup>();
    for (const k of todo) {
      const standing = this.standing(k);
      const nesting = standing.acts ? graph.check(this.actingAt(this.addressOf(k))) : undefined;
      out.set(k, resolveOne(k, this.groupsByKey.get(k)!, direct, nesting, this.networks, standing));
    }
    return out;
  }

  private addressOf(key: string): string {
    const g = this.groupsByKey.get(key)!;
    return netKey(g.spec.network, canonicalAddress(g.spec.address));
  }
}

const podKeyOf = (ep: ReportedEndpoint): string => netKey(ep.network, `${ep.pod!.namespace}/${ep.pod!.name}`);
const vmKeyOf = (ep: ReportedEndpoint): string => netKey(ep.network, `${ep.vm!.namespace}/${ep.vm!.name}`);

/** The joins of a contribution: memberships of its counted endpoints, on their own network. */
function* joinsOf(
  c: Contribution,
): Generator<{ key: string; ek: string; ep: ReportedEndpoint; m: ReportMembership }> {
  const node = c.report.spec.node;
  const live = new Map(c.endpoints.map((ep) => [ep.endpointID, ep]));
  for (const m of c.report.spec.memberships ?? []) {
    const ep = live.get(m.endpointID);
    // A join from an endpoint of another network is the agent's bug; it cannot widen delivery.
    if (!ep || ep.network !== m.network) continue;
    // An endpoint may be both a joiner and selected: one entry each (merged per endpoint later).
    const ek = m.via ? `${epKey(node, m.endpointID)}/${m.via}` : epKey(node, m.endpointID);
    yield { key: netKey(m.network, canonicalAddress(m.group)), ek, ep, m };
  }
}

function endpointAddresses(ep: ReportedEndpoint): string[] {
  return [...(ep.ips ?? []), ep.mac].map((a) => netKey(ep.network, canonicalAddress(a)));
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** Resolves every group of a snapshot at once (the reference the incremental path is tested against). */
export function resolveGroups(input: ResolveInput): Resolution {
  const r = new GroupResolver(input.checkPods);
  for (const n of input.networks) r.setNetwork(n);
  for (const p of input.pods) r.setPod(p);
  for (const v of input.vmis) r.setVmi(v);
  r.setLiveNodes(input.liveNodes);
  for (const g of input.groups) r.setGroup(g);
  for (const rep of input.reports) r.setReport(rep);
  return { groups: r.resolveDirty(), stale: r.stale() };
}
