// Group resolution: merges the nodes' reports (IGMP/MLD joins), static members, label selectors and
// nested groups into each MulticastGroup's member set. Pure: plain objects in, plain objects out.
//
// Nesting is a graph over groups (spec.nestedGroups by name, plus static members that are group
// addresses). Each group is resolved by a depth-first walk from it: an edge back onto the walk's own path
// is a cycle, reported with its path and never followed; a walk deeper than MAX_NESTING_DEPTH stops.
import type { SourceFilter } from '../lookup/port';
import type {
  GroupCounts,
  GroupMember,
  LabeledObject,
  MembershipReport,
  MulticastGroup,
  ReportEndpoint,
  Via,
  VirtualNetwork,
} from '../k8s/types';
import { MAX_NESTING_DEPTH } from '../k8s/types';
import { toSourceFilter, fromSourceFilter } from '../k8s/convert';
import { canonicalAddress, cidrFamily, familyOf, isGroupAddress } from './addr';
import type { DesiredCondition } from './conditions';
import { ANY_SOURCE, mergeFilters } from './filter';
import { selectorMatches } from './selector';

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

interface Endpoint extends ReportEndpoint {
  node: string;
}

interface Draft {
  ep: Endpoint;
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
}

// When one endpoint is a member several ways, status shows the most deliberate one.
const VIA_RANK: Record<Via, number> = { static: 4, selector: 3, igmp: 2, mld: 2, nested: 1 };

export const groupKey = (g: MulticastGroup): string =>
  `${g.metadata.namespace ?? 'default'}/${g.metadata.name}`;
const epKey = (node: string, id: number): string => `${node}/${id}`;
const netKey = (network: string, x: string): string => `${network}|${x}`;

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

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

class Index {
  readonly byAddress = new Map<string, Endpoint[]>();
  readonly byPod = new Map<string, Endpoint[]>();
  readonly byVm = new Map<string, Endpoint[]>();
  readonly joins = new Map<string, { ep: Endpoint; filter: SourceFilter }[]>();
  readonly groupsByKey = new Map<string, MulticastGroup>();
  readonly groupsByAddress = new Map<string, string[]>();
  readonly stale: StaleEndpoint[] = [];

  constructor(input: ResolveInput) {
    const pods = new Map(input.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
    const live = new Map<string, Endpoint>();
    for (const r of input.reports) {
      const node = r.spec.node;
      if (input.liveNodes && !input.liveNodes.has(node)) continue;
      for (const e of r.spec.endpoints ?? []) {
        const ep: Endpoint = { ...e, node };
        if (input.checkPods && e.pod) {
          const pod = pods.get(`${e.pod.namespace}/${e.pod.name}`);
          if (!pod || (pod.uid && e.pod.uid && pod.uid !== e.pod.uid)) {
            this.stale.push({
              node,
              endpointID: e.endpointID,
              network: e.network,
              pod: `${e.pod.namespace}/${e.pod.name}`,
            });
            continue;
          }
        }
        live.set(epKey(node, e.endpointID), ep);
        for (const a of [...(e.ips ?? []), e.mac])
          push(this.byAddress, netKey(e.network, canonicalAddress(a)), ep);
        if (e.pod) push(this.byPod, netKey(e.network, `${e.pod.namespace}/${e.pod.name}`), ep);
        if (e.vm) push(this.byVm, netKey(e.network, `${e.vm.namespace}/${e.vm.name}`), ep);
      }
    }
    for (const r of input.reports) {
      for (const m of r.spec.memberships ?? []) {
        const ep = live.get(epKey(r.spec.node, m.endpointID));
        // A join from an endpoint of another network is the agent's bug; it cannot widen delivery.
        if (!ep || ep.network !== m.network) continue;
        push(this.joins, netKey(m.network, canonicalAddress(m.group)), {
          ep,
          filter: toSourceFilter(m.filter),
        });
      }
    }
    for (const g of input.groups) {
      const key = groupKey(g);
      this.groupsByKey.set(key, g);
      push(this.groupsByAddress, netKey(g.spec.network, canonicalAddress(g.spec.address)), key);
    }
  }
}

function directMembers(g: MulticastGroup, ix: Index, input: ResolveInput): Direct {
  const ns = g.metadata.namespace ?? 'default';
  const net = g.spec.network;
  const drafts: DraftSet = new Map();
  const edges: string[] = [];
  const unresolved: string[] = [];
  const missingNested: string[] = [];
  const address = canonicalAddress(g.spec.address);

  for (const j of ix.joins.get(netKey(net, address)) ?? []) {
    addDraft(drafts, { ep: j.ep, via: familyOf(address) === 6 ? 'mld' : 'igmp', filter: j.filter });
  }
  for (const raw of g.spec.staticMembers ?? []) {
    const a = canonicalAddress(raw);
    if (isGroupAddress(a)) {
      const groups = ix.groupsByAddress.get(netKey(net, a));
      if (groups) {
        edges.push(...groups);
      } else {
        // A group address with no MulticastGroup still has its IGMP/MLD joiners.
        for (const j of ix.joins.get(netKey(net, a)) ?? []) {
          addDraft(drafts, { ep: j.ep, via: 'nested', group: a, filter: j.filter });
        }
      }
      continue;
    }
    const eps = ix.byAddress.get(netKey(net, a));
    if (!eps) unresolved.push(a);
    for (const ep of eps ?? []) addDraft(drafts, { ep, via: 'static', filter: ANY_SOURCE });
  }
  const selectFrom = (
    sel: MulticastGroup['spec']['selectors'],
    objects: LabeledObject[],
    which: 'pods' | 'vmis',
    eps: Map<string, Endpoint[]>,
  ): void => {
    const s = sel?.[which];
    if (!s) return;
    for (const o of objects) {
      if (o.namespace !== ns || !selectorMatches(s, o.labels)) continue;
      for (const ep of eps.get(netKey(net, `${o.namespace}/${o.name}`)) ?? []) {
        addDraft(drafts, { ep, via: 'selector', filter: ANY_SOURCE });
      }
    }
  };
  selectFrom(g.spec.selectors, input.pods, 'pods', ix.byPod);
  selectFrom(g.spec.selectors, input.vmis, 'vmis', ix.byVm);
  for (const name of g.spec.nestedGroups ?? []) {
    const key = `${ns}/${name}`;
    const nested = ix.groupsByKey.get(key);
    if (!nested) missingNested.push(`nested group "${name}" does not exist`);
    else if (nested.spec.network !== net) {
      missingNested.push(`nested group "${name}" is on network "${nested.spec.network}", not "${net}"`);
    } else edges.push(key);
  }
  return { drafts, edges, unresolved, missingNested };
}

interface Walk {
  drafts: DraftSet;
  cycles: string[][];
  tooDeep: string[][];
}

function walkNested(root: string, direct: (key: string) => Direct): Walk {
  const drafts: DraftSet = new Map(direct(root).drafts);
  const cycles: string[][] = [];
  const tooDeep: string[][] = [];
  const visited = new Set([root]);
  const visit = (path: string[]): void => {
    const here = path[path.length - 1];
    for (const child of direct(here).edges) {
      const onPath = path.indexOf(child);
      if (onPath >= 0) {
        cycles.push([...path.slice(onPath), child]);
        continue;
      }
      if (visited.has(child)) continue;
      if (path.length > MAX_NESTING_DEPTH) {
        tooDeep.push([...path, child]);
        continue;
      }
      visited.add(child);
      for (const d of direct(child).drafts.values()) {
        addDraft(drafts, {
          ep: d.ep,
          via: 'nested',
          group: d.via === 'nested' ? d.group : child,
          filter: d.filter,
        });
      }
      visit([...path, child]);
    }
  };
  visit([root]);
  return { drafts, cycles, tooDeep };
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

const byNodeThenId = (a: GroupMember, b: GroupMember): number =>
  (a.node ?? '').localeCompare(b.node ?? '') || (a.endpointID ?? 0) - (b.endpointID ?? 0);

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
  const fam = familyOf(g.spec.address);
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

export function resolveGroups(input: ResolveInput): Resolution {
  const ix = new Index(input);
  const networks = new Map(input.networks.map((n) => [n.metadata.name, n]));
  const directs = new Map<string, Direct>();
  const direct = (key: string): Direct => {
    let d = directs.get(key);
    if (!d) {
      d = directMembers(ix.groupsByKey.get(key)!, ix, input);
      directs.set(key, d);
    }
    return d;
  };

  const groups = new Map<string, ResolvedGroup>();
  for (const [key, g] of ix.groupsByKey) {
    const own = direct(key);
    const walk = walkNested(key, direct);
    const members = [...walk.drafts.values()].map(toMember).sort(byNodeThenId);
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
    const nesting = walk.cycles.length
      ? cond(
          'NestingValid',
          false,
          'NestingCycle',
          `nesting cycle ${walk.cycles.map(showPath).join('; ')}: the closing edge is not followed`,
        )
      : walk.tooDeep.length
        ? cond(
            'NestingValid',
            false,
            'NestingTooDeep',
            `nesting deeper than ${MAX_NESTING_DEPTH} levels is not followed: ${showPath(walk.tooDeep[0])}`,
          )
        : cond('NestingValid', true, 'Valid', 'nested groups form no cycle');
    const missing = [
      ...own.missingNested,
      ...own.unresolved.map((a) => `static member ${a} matches no endpoint on network "${g.spec.network}"`),
    ];
    const resolved = missing.length
      ? cond(
          'MembersResolved',
          false,
          own.missingNested.length ? 'NestedGroupNotFound' : 'StaticMemberNotFound',
          missing.join('; '),
        )
      : cond('MembersResolved', true, 'Resolved', 'every static member and nested group resolved');
    const summary = `${counts.members} members on ${counts.nodes} nodes`;
    const ready = netProblem
      ? cond('Ready', false, netProblem.reason, netProblem.message)
      : nesting.status === 'False'
        ? cond('Ready', false, nesting.reason, `${summary}; ${nesting.message}`)
        : cond('Ready', true, 'Resolved', summary);
    groups.set(key, { key, members, counts, conditions: [ready, resolved, nesting] });
  }
  return { groups, stale: ix.stale };
}
