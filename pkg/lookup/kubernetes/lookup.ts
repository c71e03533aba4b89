// The lookup port on Kubernetes (docs/api.md). Reads: watch caches of VirtualNetworks,
// MulticastGroups and every node's MembershipReport, turned into the Directory the data plane resolves
// from (the packet path only ever reads that Directory). Writes: only this node's own report, one
// object per node rather than one per endpoint, so a node's joins cost one coalesced write and the
// watch fan-out scales with nodes, not endpoints. It survives apiserver restarts and watch expiry:
// the watch caches resume or re-list, and the report is re-asserted whenever the stored copy drifts from
// what the agent last wanted.
//
// With `node` set, the adapter also watches that node's pods (and KubeVirt VMIs, where the API
// exists) and reports the endpoints that MulticastGroups' label selectors select as memberships via
// selector, re-evaluated on every pod, VMI, group or endpoint change (selector-members.ts).
import {
  ApisApi,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { sleep } from '../../base/async.js';
import { apiCall, isConflict, isNotFound } from '../../k8s/api-error.js';
import { EventLimiter, postEvent, type InvolvedObject } from '../../k8s/events.js';
import { toLabeledObject, trimToLabels, type LabeledResource } from '../../k8s/labeled.js';
import {
  collectionPath,
  listCastnet,
  listVmis,
  readVmi,
  crd,
  MERGE_PATCH,
  servesApi,
  servesCastnet,
  vmAddressName,
  VM,
  VMI,
  VMI_PATH,
  type VmiStatusPods,
  type CastnetKind,
  type CastnetObjects,
} from '../../k8s/resources.js';
import {
  API_VERSION,
  KINDS,
  type LabeledObject,
  type MembershipReport,
  type VMAddress,
} from '../../k8s/types.js';
import { WatchCache, type WatchCacheOptions } from '../../k8s/watch-cache.js';
import { actingGroups, fromReport, toReportSpec, type NodeDirectory } from './convert.js';
import type {
  AddressReservation,
  Directory,
  EndpointRecord,
  LookupService,
  MembershipRecord,
  NodeRecord,
  UnderlayHealthReport,
  VmiPods,
  VmOwner,
  VmRef,
} from '../port.js';
import { fromVmAddress, toVmAddress, trimVmAddress } from './vm-address.js';
import {
  buildDirectory,
  canonicalNodeDirectory,
  compactNodeDirectory,
  foreignUnderlay,
  type OwnState,
} from './directory-cache.js';
import { describeDropped, type DroppedEntry } from './report-bounds.js';
import { HealthStatusWriter } from './health-status.js';
import { ReportWriter } from './report-writer.js';
import { selectorMemberships } from './selector-members.js';

export interface KubernetesLookupOptions {
  kubeConfig: KubeConfig;
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

/** What the Node cache keeps: the name and the addresses a node's underlay may use. */
interface NodeAddresses extends KubernetesObject {
  metadata: { name: string; resourceVersion?: string };
  status?: { addresses?: { type: string; address: string }[] };
}

const UNDERLAY_ADDRESS_TYPES = new Set(['InternalIP', 'ExternalIP']);

/** Keeps a Node's name and underlay addresses (in place): not its images, conditions or spec. */
function trimNode(n: NodeAddresses & { spec?: unknown }): void {
  const { name, resourceVersion } = n.metadata;
  n.metadata = { name, ...(resourceVersion ? { resourceVersion } : {}) };
  delete n.spec;
  n.status = { addresses: (n.status?.addresses ?? []).filter((a) => UNDERLAY_ADDRESS_TYPES.has(a.type)) };
}

/** A trimmed Node's underlay addresses, comparable as one string. */
const underlayAddresses = (n: NodeAddresses): string =>
  (n.status?.addresses ?? []).map((a) => `${a.type}=${a.address}`).join(',');

/**
 * What a VMI's address reservations belong to: the VirtualMachine controlling it (a restart replaces
 * the VMI, not the VM), else the VMI itself.
 */
function vmOwner(vmi: VmiStatusPods, name: string): VmOwner | undefined {
  const vm = vmi.metadata?.ownerReferences?.find(
    (o) => o.controller && o.kind === VM.kind && o.apiVersion.startsWith(`${VM.group}/`),
  );
  if (vm) return { apiVersion: vm.apiVersion, kind: vm.kind, name: vm.name, uid: vm.uid };
  const uid = vmi.metadata?.uid;
  return uid
    ? { apiVersion: `${VMI.group}/${VMI.version}`, kind: 'VirtualMachineInstance', name, uid }
    : undefined;
}

const labeled = (o: LabeledResource | undefined): LabeledObject | undefined => o && toLabeledObject(o);

/**
 * What the cache keeps of an object: its identity and resourceVersion and its spec. Not field
 * ownership, labels, timestamps, nor a group's controller-written status (up to 5,000 members).
 */
function trim(o: KubernetesObject & { metadata: { name: string }; status?: unknown }): void {
  const { name, namespace, resourceVersion } = o.metadata;
  o.metadata = { name, ...(namespace ? { namespace } : {}), ...(resourceVersion ? { resourceVersion } : {}) };
  delete o.status;
}

export class KubernetesLookup implements LookupService {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly networks: WatchCache<CastnetObjects['virtualNetwork']>;
  private readonly groups: WatchCache<CastnetObjects['multicastGroup']>;
  private readonly reports: WatchCache<MembershipReport>;
  /**
   * Every VM's address reservations, which castnet IPAM skips: agents (`node` set) watch them when
   * the VMAddress CRD is installed (startVmAddresses).
   */
  private vmAddresses: WatchCache<VMAddress> | undefined;
  /** This node's pods, and the VMIs (when watched): what the groups' selectors select from. */
  private readonly pods: WatchCache<LabeledResource> | undefined;
  private vmis: WatchCache<LabeledResource> | undefined;
  /** The cluster's Nodes, their InternalIP and ExternalIP addresses only (agents: `node` set). */
  private readonly nodes: WatchCache<NodeAddresses> | undefined;
  /** Reports left out because their underlay address is not their Node's own, by node name. */
  private readonly foreign = new Set<string>();
  private foreignIgnored = 0;
  private readonly watchVmAddresses: () => WatchCache<VMAddress>;
  private readonly writer: ReportWriter;
  private readonly healthWriter: HealthStatusWriter;
  /** Whether the pods (and VMIs, when watched) are listed: until then the stored selections stand. */
  private selecting = false;
  /** The selector memberships last computed, canonical: a change rewrites the report. */
  private lastSelected = '';
  /**
   * Every node's report as the port's records, by report name. The cache keeps only the report's
   * metadata and underlay (see keepConverted): holding each report twice, raw and converted, would
   * double the agent's cache at a thousand nodes.
   */
  private readonly parts = new Map<string, NodeDirectory>();
  /** Shared copies of the names the reports repeat (networks, nodes, groups); at most MAX_INTERNED. */
  private readonly strings = new Map<string, string>();
  private readonly listeners = new Set<(d: Directory) => void>();
  private own: OwnState = {};
  private last: Directory | undefined;
  private synced = false;
  private rebuildScheduled = false;
  private started = false;
  private closed = false;
  /** Events about entries left out of the report: a few per pod, and a node-wide cap. */
  private readonly eventLimiter = new EventLimiter(3, 60_000);
  private readonly nodeEventLimiter = new EventLimiter(20, 3_000);
  private eventsSuppressed = 0;
  private resolveReady!: () => void;
  /** Resolves once all three caches hold a complete list. */
  readonly ready = new Promise<void>((r) => (this.resolveReady = r));

  constructor(private readonly opts: KubernetesLookupOptions) {
    const kc = opts.kubeConfig;
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.healthWriter = new HealthStatusWriter(this.custom, (err) => {
      if (!this.closed) opts.onError?.(err, 'underlay health');
    });
    const castnet = <K extends CastnetKind>(
      kind: K,
      handlers: Pick<WatchCacheOptions<CastnetObjects[K]>, 'onUpsert' | 'onDelete' | 'trim'>,
      labelSelector?: string,
    ) =>
      this.cache<CastnetObjects[K]>({
        what: KINDS[kind].kind + (KINDS[kind].kind.endsWith('s') ? 'es' : 's'),
        path: collectionPath(kind),
        listPage: (page) => listCastnet(this.custom, kind, page),
        labelSelector,
        trim,
        ...handlers,
      });
    const changed = (): void => this.changed();
    this.networks = castnet('virtualNetwork', { onUpsert: changed, onDelete: changed }, opts.selector);
    this.groups = castnet('multicastGroup', { onUpsert: changed, onDelete: changed }, opts.selector);
    this.reports = castnet('membershipReport', {
      trim: (r) => this.keepConverted(r),
      onUpsert: (r) => this.reportChanged(r.metadata.name),
      onDelete: (r) => {
        this.parts.delete(r.metadata.name);
        this.reportChanged(r.metadata.name);
      },
    });
    this.watchVmAddresses = () =>
      castnet('vmAddress', { trim: trimVmAddress, onUpsert: changed, onDelete: changed });
    this.pods = opts.node
      ? this.cache<LabeledResource>({
          what: `pods on node ${opts.node}`,
          path: '/api/v1/pods',
          listPage: (page) => this.core.listPodForAllNamespaces(page),
          fieldSelector: `spec.nodeName=${opts.node}`,
          trim: trimToLabels,
          onUpsert: changed,
          onDelete: changed,
        })
      : undefined;
    // An agent compares every report's underlay address with its Node's (the controller and the
    // lab's read-only views do not).
    this.nodes = opts.node
      ? this.cache<NodeAddresses>({
          what: 'Nodes',
          path: '/api/v1/nodes',
          listPage: (page) => this.core.listNode(page) as Promise<KubernetesListObject<NodeAddresses>>,
          trim: trimNode,
          // Only the addresses count: a Node's status is rewritten for conditions and heartbeats,
          // and each rewrite would rebuild every agent's directory.
          onUpsert: (n, previous) => {
            if (!previous || underlayAddresses(n) !== underlayAddresses(previous)) changed();
          },
          onDelete: changed,
        })
      : undefined;
    this.writer = new ReportWriter(this.custom, {
      intervalMs: opts.writeIntervalMs ?? 50,
      maxBackoffMs: 2_000,
      onError: (err) => this.failed(err, 'write of this node’s MembershipReport'),
      onDropped: (entries) => this.announceDropped(entries),
    });
  }

  private cache<T extends KubernetesObject>(o: WatchCacheOptions<T>): WatchCache<T> {
    return new WatchCache<T>(this.opts.kubeConfig, {
      onError: (err) => this.failed(err, `watch of ${o.what}`),
      minBackoffMs: 100,
      maxBackoffMs: 2_000,
      ...o,
    });
  }

  private failed(err: unknown, what: string): void {
    if (!this.closed) this.opts.onError?.(err, what);
  }

  /**
   * Lists and watches; `ready` (and the returned promise) resolve once the VirtualNetworks,
   * MulticastGroups and MembershipReports are cached. Never rejects: failures go to `onError` and
   * are retried.
   */
  start(): Promise<void> {
    if (this.started) return this.ready;
    this.started = true;
    // Not part of `ready`: without pods (say, RBAC not granting them yet) the agent still delivers
    // joins and keeps the selections its report already holds.
    if (this.pods) {
      void Promise.all([this.pods.start(), this.startVmis()]).then(
        () => {
          this.selecting = true;
          this.changed();
        },
        (err: unknown) => this.failed(err, 'watch of the pods and VMIs that groups select'),
      );
    }
    void Promise.all([
      this.networks.start(),
      this.groups.start(),
      this.reports.start(),
      this.nodes?.start(),
      // castnet IPAM must know every reservation before it allocates.
      this.opts.node ? this.startVmAddresses() : undefined,
    ]).then(() => {
      this.synced = true;
      this.checkOwnReport();
      this.changed();
      this.resolveReady();
    });
    return this.ready;
  }

  /**
   * Watches the VMAddresses, when their CRD is installed. Without it (a `helm upgrade` from a release
   * before it: Helm installs no new CRD on upgrade) the agent runs as before, VMs getting new
   * addresses at each start, and says so once.
   */
  private async startVmAddresses(): Promise<void> {
    for (let backoff = 100; !this.closed; backoff = Math.min(backoff * 2, 2_000)) {
      let served: boolean;
      try {
        served = await apiCall('discover castnet.io/v1alpha1', () => servesCastnet(this.custom, 'vmAddress'));
      } catch (err) {
        this.failed(err, 'discovery of the VMAddress API');
        await sleep(backoff);
        continue;
      }
      if (!served) {
        this.failed(
          new Error(
            'the VMAddress CRD (vmaddresses.castnet.io) is not installed: VMs get new addresses at each start; apply charts/castnet/crds/ (helm upgrade installs no new CRD) and restart the agents',
          ),
          'discovery of the VMAddress API',
        );
        return;
      }
      if (this.closed) return;
      this.vmAddresses = this.watchVmAddresses();
      return this.vmAddresses.start();
    }
  }

  private async startVmis(): Promise<void> {
    const watch = this.opts.watchVmis ?? 'auto';
    if (watch === false || (watch === 'auto' && !(await this.hasKubeVirt()))) return;
    if (this.closed) return;
    this.vmis = this.cache<LabeledResource>({
      what: 'KubeVirt VirtualMachineInstances',
      path: VMI_PATH,
      listPage: (page) => listVmis(this.custom, page),
      trim: trimToLabels,
      onUpsert: () => this.changed(),
      onDelete: () => this.changed(),
    });
    await this.vmis.start();
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

  /** Written to the report's status in the background; never waits for the apiserver. */
  async reportUnderlayHealth(report: UnderlayHealthReport): Promise<void> {
    this.checkNode('reportUnderlayHealth', report.node);
    this.healthWriter.set(report);
  }

  /** A pod's labels and annotations (KubeVirt identity), read once per CNI ADD. */
  async podMetadata(namespace: string, name: string): Promise<PodLabels | undefined> {
    try {
      const pod = await apiCall(`read pod ${namespace}/${name}`, () =>
        this.core.readNamespacedPod({ namespace, name }),
      );
      const { uid, labels, annotations } = pod.metadata ?? {};
      return { namespace, name, uid, labels: labels ?? {}, annotations: annotations ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * A VMI's pods as its status names them, read at a CNI ADD (undefined: no such VMI, or KubeVirt's
   * API is not served). The VMI cache keeps labels only, so this reads the object itself.
   */
  async vmiPods(namespace: string, name: string): Promise<VmiPods | undefined> {
    try {
      const vmi = await apiCall(`read VMI ${namespace}/${name}`, () => readVmi(this.custom, namespace, name));
      const target = vmi.status?.migrationState?.targetPod;
      const owner = vmOwner(vmi, name);
      return {
        namespace,
        name,
        activePodUids: Object.keys(vmi.status?.activePods ?? {}),
        ...(target ? { migrationTargetPod: target } : {}),
        ...(owner ? { owner } : {}),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** `vm`'s VMAddress on `network`, read from the apiserver (the cache may not have it yet). */
  async addressReservation(vm: VmRef, network: string): Promise<AddressReservation | undefined> {
    if (!this.vmAddresses) return undefined;
    const name = vmAddressName(vm.name, network);
    try {
      const o = await apiCall(`read VMAddress ${vm.namespace}/${name}`, () =>
        this.custom.getNamespacedCustomObject({ ...crd('vmAddress'), namespace: vm.namespace, name }),
      );
      return this.reservationOf(o as VMAddress, vm, network);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Creates `vm`'s VMAddress (owned by `owner`, so Kubernetes' garbage collector deletes it with the
   * VM); when one exists already (another node created it first: creation is atomic), resolves with
   * that one, unless `replace` overwrites it. Undefined without the VMAddress CRD.
   */
  async reserveAddresses(
    r: AddressReservation,
    opts: { owner?: VmOwner; replace?: boolean } = {},
  ): Promise<AddressReservation | undefined> {
    if (!this.vmAddresses) return undefined;
    const body = toVmAddress(r, opts.owner);
    const { namespace, name } = body.metadata as { namespace: string; name: string };
    const what = `VMAddress ${namespace}/${name}`;
    for (;;) {
      try {
        const o = await apiCall(`create ${what}`, () =>
          this.custom.createNamespacedCustomObject({ ...crd('vmAddress'), namespace, body }),
        );
        return this.reservationOf(o as VMAddress, r.vm, r.network);
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      const existing = await this.addressReservation(r.vm, r.network);
      if (!existing) continue; // deleted in between: create it again
      if (!opts.replace) return existing;
      try {
        const o = await apiCall(`replace ${what}`, () =>
          this.custom.patchNamespacedCustomObject(
            {
              ...crd('vmAddress'),
              namespace,
              name,
              // A known owner replaces the old one (a VM made again under the name); else it stays.
              body: {
                ...(opts.owner ? { metadata: { ownerReferences: body.metadata.ownerReferences } } : {}),
                spec: body.spec,
              },
            },
            MERGE_PATCH,
          ),
        );
        return this.reservationOf(o as VMAddress, r.vm, r.network);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  /** The reservation a VMAddress read for `vm` on `network` holds; throws when it names others. */
  private reservationOf(o: VMAddress, vm: VmRef, network: string): AddressReservation {
    const r = fromVmAddress(o);
    if (!r || r.network !== network || r.vm.name !== vm.name)
      throw new Error(
        `VMAddress ${vm.namespace}/${o.metadata.name}: spec names VMI ${JSON.stringify(o.spec?.vmi)} on network ${JSON.stringify(o.spec?.network)}, not VMI ${JSON.stringify(vm.name)} on network ${JSON.stringify(network)}`,
      );
    return r;
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
    foreignUnderlayIgnored: number;
    watchRestarts: number;
    relists: number;
  } {
    const caches = this.caches();
    return {
      writes: this.writer.writes,
      reportDrops: { ...this.writer.drops },
      dropEventsSuppressed: this.eventsSuppressed,
      foreignUnderlayIgnored: this.foreignIgnored,
      watchRestarts: caches.reduce((n, i) => n + i.restarts, 0),
      relists: caches.reduce((n, i) => n + i.relists, 0),
    };
  }

  async dispose(): Promise<void> {
    this.closed = true;
    this.writer.dispose();
    this.healthWriter.dispose();
    for (const c of this.caches()) c.dispose();
  }

  /** The watch caches this lookup runs (the optional ones only when their kind is served). */
  private caches() {
    return [
      this.networks,
      this.groups,
      this.reports,
      this.pods,
      this.vmis,
      this.nodes,
      this.vmAddresses,
    ].filter((c) => c !== undefined);
  }

  private checkNode(what: string, node: string): void {
    const self = this.own.node?.name;
    if (!self) throw new Error(`${what}: registerNode must come first`);
    if (node !== self)
      throw new Error(`${what}: node "${node}" is not this agent's node "${self}"; it writes only its own`);
  }

  /** Whether the kubevirt.io API is served; asks again (with backoff) until the apiserver answers. */
  private async hasKubeVirt(): Promise<boolean> {
    const apis = this.opts.kubeConfig.makeApiClient(ApisApi);
    for (let backoff = 100; !this.closed; backoff = Math.min(backoff * 2, 2_000)) {
      try {
        return await apiCall('discover the API groups', () => servesApi(apis, VMI.group, VMI.version));
      } catch (err) {
        this.failed(err, 'discovery of the KubeVirt API');
        await sleep(backoff);
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
    return selectorMemberships(node, actingGroups(this.groups.list(), this.networks.list()), endpoints, {
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
  private announceDropped(entries: DroppedEntry[]): void {
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
        this.core,
        obj,
        { type: 'Warning', reason, message: `${describeDropped(d)} (MembershipReport ${node})` },
        { component: 'agent', instance: node },
      ).catch((err: unknown) => this.failed(err, `event about ${key}`));
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

  /** A report changed or went: if it is ours, check that it still says what we want. */
  private reportChanged(name: string): void {
    if (name === this.own.node?.name) this.checkOwnReport();
    this.changed();
  }

  /** A pod, VMI, group or endpoint change that changed which endpoints are selected rewrites the report. */
  private reportSelectionChange(own: OwnState): void {
    if (!own.node || !this.pods) return;
    const selected = JSON.stringify((own.memberships ?? []).filter((m) => m.via === 'selector'));
    if (selected === this.lastSelected) return;
    this.lastSelected = selected;
    if (this.writer.spec) this.writer.set(this.desiredSpec()).catch(() => undefined);
  }

  /** The reports whose underlay address is their Node's own; the others are ignored, counted and said once. */
  private trustedReports(): NodeDirectory[] {
    const nodes = this.nodes;
    if (!nodes) return [...this.parts.values()];
    const addressesOf = (name: string) => nodes.get(name)?.status?.addresses?.map((a) => a.address);
    const out: NodeDirectory[] = [];
    const foreign = new Set<string>();
    for (const p of this.parts.values()) {
      if (!foreignUnderlay(p, addressesOf)) {
        out.push(p);
        continue;
      }
      foreign.add(p.node.name);
      if (this.foreign.has(p.node.name)) continue;
      this.foreignIgnored++;
      this.failed(
        new Error(
          `MembershipReport ${p.node.name}: underlay.address ${p.node.address} is not an address of Node ${p.node.name} (${addressesOf(p.node.name)!.join(', ') || 'none'}); the report is ignored`,
        ),
        'check of the reports’ underlay addresses',
      );
    }
    this.foreign.clear();
    for (const n of foreign) this.foreign.add(n);
    return out;
  }

  private reservations(objects: readonly VMAddress[]): AddressReservation[] {
    const out: AddressReservation[] = [];
    for (const o of objects) {
      const r = fromVmAddress(o);
      if (r) out.push(r);
    }
    return out;
  }

  private changed(): void {
    if (!this.synced || this.rebuildScheduled || this.closed) return;
    this.rebuildScheduled = true;
    setImmediate(() => {
      this.rebuildScheduled = false;
      if (this.closed) return;
      const own = this.ownState();
      this.last = buildDirectory(this.networks.list(), this.groups.list(), this.trustedReports(), own);
      if (this.vmAddresses) this.last.reservations = this.reservations(this.vmAddresses.list());
      this.reportSelectionChange(own);
      for (const fn of this.listeners) fn(this.last);
    });
  }
}
