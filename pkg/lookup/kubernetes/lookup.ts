// The lookup port on Kubernetes (docs/api.md). Reads: watch caches of VirtualNetworks,
// MulticastGroups and every node's MembershipReport, turned into the Directory the data plane resolves
// from (the packet path only ever reads that Directory). Writes: only this node's own report, one
// object per node rather than one per endpoint, so a node's joins cost one coalesced write and the
// watch fan-out scales with nodes, not endpoints. It survives apiserver restarts and watch expiry:
// the informers resume or re-list, and the report is re-asserted whenever the stored copy drifts from
// what the agent last wanted.
//
// With `node` set, the adapter also watches that node's pods (and KubeVirt VMIs, where the API
// exists) and reports the endpoints that MulticastGroups' label selectors select as memberships via
// selector, re-evaluated on every pod, VMI, group or endpoint change (selector-members.ts).
import { ApiClient, isNotFound, resourcePath } from '../../k8s/client.js';
import { toLabeledObject, trimToLabels } from '../../k8s/labeled.js';
import type { LabeledObject } from '../../k8s/types.js';
import { toReportSpec, fromReport, type NodeDirectory } from './convert.js';
import { EventLimiter, postEvent, type InvolvedObject } from '../../k8s/events.js';
import { Informer } from '../../k8s/informer.js';
import type { Connection } from '../../k8s/kubeconfig.js';
import {
  API_VERSION,
  KINDS,
  type MembershipReport,
  type MulticastGroup,
  type VirtualNetwork,
} from '../../k8s/types.js';
import type { Directory, EndpointRecord, LookupService, MembershipRecord, NodeRecord } from '../port.js';
import {
  buildDirectory,
  canonicalNodeDirectory,
  compactNodeDirectory,
  type OwnState,
} from './directory-cache.js';
import { describeDropped, type DroppedEntry } from './report-bounds.js';
import { ReportWriter } from './report-writer.js';
import { selectorMemberships } from './selector-members.js';

export interface KubernetesLookupOptions {
  connection: Connection;
  /**
   * Label selector for the VirtualNetworks and MulticastGroups this agent sees (e.g. one lab among
   * several on a cluster). Reports are always all read: they only matter through those networks.
   */
  selector?: string;
  /**
   * This agent's node: its pods (and the cluster's VMIs) are watched so that the groups' label
   * selectors are evaluated against its endpoints. Absent: no selector members (a read-only view).
   */
  node?: string;
  /** Watch KubeVirt VMIs for vmis selectors: 'auto' (default) does when the kubevirt.io API exists. */
  watchVmis?: boolean | 'auto';
  /** Minimum time between two writes of this node's report (default 50 ms). */
  writeIntervalMs?: number;
  onError?: (err: unknown, what: string) => void;
}

/** The port's PodMeta. */
interface PodLabels {
  namespace: string;
  name: string;
  uid?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

interface Meta {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

/** A Pod or VMI as the selectors need it. */
interface Labeled {
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
  };
}

const labeled = (o: Labeled | undefined): LabeledObject | undefined => o && toLabeledObject(o);

const VMIS_PATH = '/apis/kubevirt.io/v1/virtualmachineinstances';

/**
 * What the cache keeps of an object: its identity and resourceVersion and its spec. Not field
 * ownership, labels, timestamps, nor a group's controller-written status (up to 5,000 members).
 */
function trim(o: Meta & { status?: unknown }): void {
  const { name, namespace, resourceVersion } = o.metadata;
  o.metadata = { name, ...(namespace ? { namespace } : {}), ...(resourceVersion ? { resourceVersion } : {}) };
  delete o.status;
}

export class KubernetesLookup implements LookupService {
  private readonly api: ApiClient;
  private readonly networks: Informer<VirtualNetwork>;
  private readonly groups: Informer<MulticastGroup>;
  private readonly reports: Informer<MembershipReport>;
  /** This node's pods, and the VMIs (when watched): what the groups' selectors select from. */
  private readonly pods: Informer<Labeled> | undefined;
  private vmis: Informer<Labeled> | undefined;
  private readonly writer: ReportWriter;
  /** Whether the pods (and VMIs, when watched) are listed: until then the stored selections stand. */
  private selecting = false;
  /** The selector memberships last computed, canonical: a change rewrites the report. */
  private lastSelected = '';
  /**
   * Every node's report as the port's records, by report name. The informer keeps only the report's
   * metadata and underlay (see keepConverted): holding each report twice, raw and converted, would
   * double the agent's cache at a thousand nodes.
   */
  private readonly parts = new Map<string, NodeDirectory>();
  /** Shared copies of the names the reports repeat (networks, nodes, groups); few and bounded. */
  private readonly strings = new Map<string, string>();
  private readonly listeners = new Set<(d: Directory) => void>();
  private own: OwnState = {};
  private last: Directory | undefined;
  private synced = false;
  private rebuildScheduled = false;
  private closed = false;
  /** Events about entries left out of the report: a few per pod, and a node-wide cap. */
  private readonly eventLimiter = new EventLimiter(3, 60_000);
  private readonly nodeEventLimiter = new EventLimiter(20, 3_000);
  private eventsSuppressed = 0;
  /** Resolves once all three caches hold a complete list. */
  readonly ready: Promise<void>;

  constructor(opts: KubernetesLookupOptions) {
    this.api = new ApiClient(opts.connection);
    const onError = (err: unknown, what: string): void => {
      if (!this.closed) opts.onError?.(err, what);
    };
    const query = opts.selector ? `?labelSelector=${encodeURIComponent(opts.selector)}` : '';
    const informer = <T extends Meta>(
      path: string,
      onChange: (obj?: T, previous?: T) => void,
      trimObject: (o: T) => void = trim,
    ): Informer<T> =>
      new Informer<T>(this.api, path, {
        onChange,
        onError: (err, path) => onError(err, `watch ${path}`),
        trim: trimObject,
        minBackoffMs: 100,
        maxBackoffMs: 2_000,
      });
    const castnet = (plural: string): string => resourcePath(API_VERSION, plural);
    this.networks = informer(castnet(KINDS.virtualNetwork.plural) + query, () => this.changed());
    this.groups = informer(castnet(KINDS.multicastGroup.plural) + query, () => this.changed());
    this.reports = informer<MembershipReport>(
      castnet(KINDS.membershipReport.plural),
      (obj, previous) => {
        const self = this.own.node?.name;
        if (!obj && previous) this.parts.delete(previous.metadata.name);
        if (!obj && !previous) this.pruneParts();
        // A re-list (no object) or an event on our own report: check that it still says what we want.
        if (!obj && !previous) this.checkOwnReport();
        else if (self && (obj ?? previous)?.metadata.name === self) this.checkOwnReport();
        this.changed();
      },
      (r) => this.keepConverted(r),
    );
    const onObject = (): void => this.changed();
    const podsOfNode = `?fieldSelector=${encodeURIComponent(`spec.nodeName=${opts.node}`)}`;
    this.pods = opts.node
      ? informer<Labeled>(`/api/v1/pods${podsOfNode}`, onObject, trimToLabels)
      : undefined;
    const startVmis = async (): Promise<void> => {
      const watch = opts.watchVmis ?? 'auto';
      if (watch === false || (watch === 'auto' && !(await this.hasKubeVirt(onError)))) return;
      if (this.closed) return;
      this.vmis = informer<Labeled>(VMIS_PATH, onObject, trimToLabels);
      await this.vmis.start();
    };
    // Not part of `ready`: without pods (say, RBAC not granting them yet) the agent still delivers
    // joins and keeps the selections its report already holds.
    if (this.pods) {
      void Promise.all([this.pods.start(), startVmis()]).then(
        () => {
          this.selecting = true;
          this.changed();
        },
        (err: unknown) => onError(err, 'watch of the pods and VMIs that groups select'),
      );
    }
    this.writer = new ReportWriter(this.api, {
      intervalMs: opts.writeIntervalMs ?? 50,
      maxBackoffMs: 2_000,
      onError: (err) => onError(err, 'write of this node’s MembershipReport'),
      onDropped: (entries) => this.announceDropped(entries, onError),
    });
    this.ready = Promise.all([this.networks.start(), this.groups.start(), this.reports.start()]).then(() => {
      this.synced = true;
      this.checkOwnReport();
      this.changed();
    });
  }

  /**
   * Records this node and schedules its report; resolves at once. The agent must not wait for the
   * apiserver to start (it wires pods without it); the write is retried until it lands, and errors
   * go to `onError`.
   */
  async registerNode(node: NodeRecord): Promise<void> {
    this.own = { ...this.own, node: { ...node } };
    this.publish().catch(() => undefined);
  }

  async publishEndpoints(node: string, endpoints: EndpointRecord[]): Promise<void> {
    this.checkNode('publishEndpoints', node);
    this.own = { ...this.own, endpoints: [...endpoints] };
    await this.publish();
  }

  async reportMemberships(node: string, memberships: MembershipRecord[]): Promise<void> {
    this.checkNode('reportMemberships', node);
    this.own = { ...this.own, memberships: [...memberships] };
    await this.publish();
  }

  /** A pod's labels and annotations (KubeVirt identity), read once per CNI ADD. */
  async podMetadata(namespace: string, name: string): Promise<PodLabels | undefined> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
    try {
      const pod = await this.api.get<{ metadata: Partial<PodLabels> }>(path);
      const { uid, labels, annotations } = pod.metadata;
      return { namespace, name, uid, labels: labels ?? {}, annotations: annotations ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new Error(`failed to read pod ${namespace}/${name}: ${(err as Error).message}`, { cause: err });
    }
  }

  subscribe(onChange: (d: Directory) => void): () => void {
    this.listeners.add(onChange);
    if (this.last) onChange(this.last);
    return () => this.listeners.delete(onChange);
  }

  /** The current directory, once the caches are synced. */
  get directory(): Directory | undefined {
    return this.last;
  }

  /**
   * Counters: successful report writes, entries left out of the report by reason, Events about them
   * not sent (rate limit), watch restarts and full re-lists.
   */
  get stats(): {
    writes: number;
    reportDrops: Record<string, number>;
    dropEventsSuppressed: number;
    watchRestarts: number;
    relists: number;
  } {
    const informers = [this.networks, this.groups, this.reports, this.pods, this.vmis].filter(
      (i) => i !== undefined,
    );
    return {
      writes: this.writer.writes,
      reportDrops: { ...this.writer.drops },
      dropEventsSuppressed: this.eventsSuppressed,
      watchRestarts: informers.reduce((n, i) => n + i.restarts, 0),
      relists: informers.reduce((n, i) => n + i.relists, 0),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.writer.close();
    this.networks.stop();
    this.groups.stop();
    this.reports.stop();
    this.pods?.stop();
    this.vmis?.stop();
    this.api.close();
  }

  private checkNode(what: string, node: string): void {
    const self = this.own.node?.name;
    if (!self) throw new Error(`${what}: registerNode must come first`);
    if (node !== self)
      throw new Error(`${what}: node "${node}" is not this agent's node "${self}"; it writes only its own`);
  }

  /** Whether the kubevirt.io API is served; asks again (with backoff) until the apiserver answers. */
  private async hasKubeVirt(onError: (err: unknown, what: string) => void): Promise<boolean> {
    for (let backoff = 100; !this.closed; backoff = Math.min(backoff * 2, 2_000)) {
      try {
        await this.api.get('/apis/kubevirt.io/v1');
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        onError(err, 'discovery of the KubeVirt API');
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
    return false;
  }

  /**
   * This node's part of the directory: our own state, and the stored report's for what we never set;
   * its memberships are the querier's joins and the selector members evaluated now.
   */
  private ownState(): OwnState {
    const node = this.own.node;
    if (!node) return this.own;
    const cached = this.parts.get(node.name);
    const endpoints = this.own.endpoints ?? cached?.endpoints ?? [];
    const joins = this.own.memberships ?? cached?.memberships.filter((m) => !m.via) ?? [];
    return { node, endpoints, memberships: [...joins, ...this.selected(node.name, endpoints)] };
  }

  /** The selector members among `endpoints`, once the pods are known (before that, the stored ones). */
  private selected(node: string, endpoints: EndpointRecord[]): MembershipRecord[] {
    if (!this.pods || !this.selecting)
      return this.parts.get(node)?.memberships.filter((m) => m.via === 'selector') ?? [];
    const pods = this.pods;
    const vmis = this.vmis;
    return selectorMemberships(node, this.groups.list(), endpoints, {
      pod: (ns, name) => labeled(pods.get(name, ns)),
      vmi: (ns, name) => labeled(vmis?.get(name, ns)),
    });
  }

  /** The report this node should have. */
  private desiredSpec() {
    const own = this.ownState();
    return toReportSpec({ node: own.node!, endpoints: own.endpoints!, memberships: own.memberships! });
  }

  private async publish(): Promise<void> {
    this.changed();
    // Before the caches are synced we cannot know what an earlier run of this agent reported, so a
    // partial state (endpoints but no memberships yet) would erase it.
    await this.ready;
    if (this.closed) return;
    await this.writer.set(this.desiredSpec());
  }

  /** A Warning Event per entry left out of the report: on its pod when known, else on the report. */
  private announceDropped(entries: DroppedEntry[], onError: (err: unknown, what: string) => void): void {
    const node = this.own.node?.name;
    if (!node) return;
    const now = Date.now();
    for (const d of entries) {
      const obj: InvolvedObject = d.pod
        ? { apiVersion: 'v1', kind: 'Pod', ...d.pod }
        : { apiVersion: API_VERSION, kind: KINDS.membershipReport.kind, name: node };
      const key = d.pod ? `${d.pod.namespace}/${d.pod.name}` : node;
      if (!this.eventLimiter.allow(key, now) || !this.nodeEventLimiter.allow('*', now)) {
        this.eventsSuppressed++;
        continue;
      }
      const reason = d.group === undefined ? 'EndpointNotPublished' : 'MembershipNotPublished';
      postEvent(
        this.api,
        obj,
        { type: 'Warning', reason, message: `${describeDropped(d)} (MembershipReport ${node})` },
        { component: 'agent', instance: node },
      ).catch((err: unknown) => onError(err, `event about ${key}`));
    }
  }

  /** Re-asserts our report if the stored one is missing or says something else. */
  private checkOwnReport(): void {
    const self = this.own.node?.name;
    if (!self || !this.synced || this.writer.busy || !this.writer.spec) return;
    const stored = this.parts.get(self);
    const want = canonicalNodeDirectory(fromReport({ metadata: { name: self }, spec: this.writer.spec }));
    if (!stored || canonicalNodeDirectory(stored) !== want) this.writer.reassert();
  }

  /** Converts a report as it enters the cache and leaves the cache only its identity and underlay. */
  private keepConverted(r: MembershipReport): void {
    trim(r);
    this.parts.set(r.metadata.name, compactNodeDirectory(fromReport(r), this.strings));
    delete r.spec.endpoints;
    delete r.spec.memberships;
  }

  /** After a re-list: forget the reports that are gone. */
  private pruneParts(): void {
    const live = new Set(this.reports.list().map((r) => r.metadata.name));
    for (const name of this.parts.keys()) if (!live.has(name)) this.parts.delete(name);
  }

  /** A pod, VMI, group or endpoint change that changed which endpoints are selected rewrites the report. */
  private reportSelectionChange(own: OwnState): void {
    if (!own.node || !this.pods) return;
    const selected = JSON.stringify((own.memberships ?? []).filter((m) => m.via === 'selector'));
    if (selected === this.lastSelected) return;
    this.lastSelected = selected;
    if (this.writer.spec) this.writer.set(this.desiredSpec()).catch(() => undefined);
  }

  private changed(): void {
    if (!this.synced || this.rebuildScheduled || this.closed) return;
    this.rebuildScheduled = true;
    setImmediate(() => {
      this.rebuildScheduled = false;
      if (this.closed) return;
      const own = this.ownState();
      this.last = buildDirectory(this.networks.list(), this.groups.list(), this.parts.values(), own);
      this.reportSelectionChange(own);
      for (const fn of this.listeners) fn(this.last);
    });
  }
}
