// `castnet controller`: watch caches (client-node's ListWatch, pkg/k8s/watch-cache.ts), one per kind,
// feed one in-memory picture of the cluster; after each burst of changes the leader resolves every
// group (resolve.ts, pure) and queues the statuses that differ; workers write them through the status
// subresource with per-key retries, then emit rate-limited Events.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ApisApi,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1Node,
} from '@kubernetes/client-node';
import { sleep } from '../base/async.js';
import { errorMessage } from '../base/errors.js';
import { apiCall, isNotFound } from '../k8s/api-error.js';
import { checkCredentials } from '../k8s/config.js';
import { postEvent } from '../k8s/events.js';
import { toLabeledObject, trimToLabels, type LabeledResource } from '../k8s/labeled.js';
import {
  collectionPath,
  crd,
  listCastnet,
  listVmis,
  MERGE_PATCH,
  servesApi,
  VMI,
  VMI_PATH,
  type CastnetKind,
  type CastnetObjects,
} from '../k8s/resources.js';
import type {
  LabeledObject,
  MembershipReport,
  MulticastGroup,
  MulticastGroupStatus,
  NodeState,
  VirtualNetwork,
  VirtualNetworkStatus,
} from '../k8s/types.js';
import { API_VERSION, KINDS } from '../k8s/types.js';
import { WatchCache, type AnyWatchCache, type WatchCacheOptions } from '../k8s/watch-cache.js';
import { EventLimiter, groupEvents, type EventDraft } from './events.js';
import { judgeNodes } from './gc.js';
import { LeaderElector } from './leader.js';
import { ControllerMetrics } from './metrics.js';
import { desiredNetworkStatuses } from './networks.js';
import { GroupResolver, groupKey } from './resolve.js';
import { desiredGroupStatus, sameStatus } from './status.js';
import { WorkQueue } from './workqueue.js';

export interface ControllerOptions {
  identity: string;
  leaseNamespace: string;
  leaseName?: string;
  /** A node NotReady or deleted longer than this stops counting; deleted ones lose their report. */
  nodeGraceMs?: number;
  /** Coalesces bursts of watch events into one resolve. */
  debounceMs?: number;
  /** Re-runs GC this often even without events (grace periods expire silently). */
  resyncMs?: number;
  /** Also export process and runtime metrics (set by the command, not by in-process tests). */
  processMetrics?: boolean;
  /** Re-resolves and re-verifies every group this often. */
  fullResyncMs?: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Serve /metrics, /healthz and /readyz; port 0 picks a free port. */
  metrics?: { host: string; port: number };
  /** Watch KubeVirt VMIs for vmi selectors: 'auto' does when the kubevirt.io API exists. */
  watchVmis?: boolean | 'auto';
  /** Status writes in flight at once (the first resolve of 10,000 groups writes 10,000). */
  statusWriters?: number;
  eventBurst?: number;
  eventIntervalMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/** What the work queue does: write one status, or delete the report of a node that is gone. */
export type Work =
  | { kind: 'groupStatus'; namespace: string; name: string }
  | { kind: 'networkStatus'; name: string }
  | { kind: 'reportCollection'; node: string };

/** The identity of a piece of work (which two are the same item in the queue). */
export function workId(w: Work): string {
  switch (w.kind) {
    case 'groupStatus':
      return `group/${w.namespace}/${w.name}`;
    case 'networkStatus':
      return `network/${w.name}`;
    case 'reportCollection':
      return `report/${w.node}`;
  }
}

const groupWork = (g: MulticastGroup): Work => ({
  kind: 'groupStatus',
  namespace: g.metadata.namespace ?? 'default',
  name: g.metadata.name,
});

interface PendingGroupStatus {
  desired: MulticastGroupStatus;
  /** The status before this write, for the Events describing the change. */
  before?: MulticastGroupStatus;
  uid?: string;
}

/** The kinds the controller watches, by the name its metrics and tests use. */
export type WatchedResource = 'networks' | 'groups' | 'reports' | 'pods' | 'nodes' | 'vmis';

export class Controller {
  readonly metrics: ControllerMetrics;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly networks: WatchCache<VirtualNetwork>;
  private readonly groups: WatchCache<MulticastGroup>;
  private readonly reports: WatchCache<MembershipReport>;
  private readonly pods: WatchCache<LabeledResource>;
  private readonly nodes: WatchCache<V1Node>;
  private vmis?: WatchCache<LabeledResource>;
  private readonly queue: WorkQueue<Work>;
  private readonly elector: LeaderElector;
  private readonly limiter: EventLimiter;
  /** Across all groups, so a controller start or a node loss cannot flood the apiserver with Events. */
  private readonly globalLimiter = new EventLimiter(100, 100);
  /** Statuses to write, by group key and by network name. */
  private readonly pendingGroups = new Map<string, PendingGroupStatus>();
  private readonly pendingNetworks = new Map<string, VirtualNetworkStatus>();
  /** Statuses written whose watch echo has not arrived yet: until it does, the cache is older. */
  private readonly writtenGroups = new Map<string, MulticastGroupStatus>();
  private readonly writtenNetworks = new Map<string, VirtualNetworkStatus>();
  private missingSince = new Map<string, number>();
  private readonly resolver = new GroupResolver(true);
  private lastFullResolve = Date.now();
  private debounce?: NodeJS.Timeout;
  private resync?: NodeJS.Timeout;
  private server?: http.Server;
  private synced = false;
  private stopped = false;
  resolves = 0;

  constructor(
    private readonly kc: KubeConfig,
    readonly opts: ControllerOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.metrics = new ControllerMetrics({ processMetrics: opts.processMetrics });
    this.limiter = new EventLimiter(opts.eventBurst ?? 5, opts.eventIntervalMs ?? 10_000);
    this.queue = new WorkQueue<Work>((w) => this.process(w), {
      id: workId,
      workers: opts.statusWriters ?? 8,
      onRetry: (w, err, attempt) => {
        this.metrics.queueRetries.inc();
        this.log('warn', 'retrying', { work: workId(w), attempt, error: errorMessage(err) });
      },
    });
    this.elector = new LeaderElector(kc.makeApiClient(CoordinationV1Api), {
      namespace: opts.leaseNamespace,
      name: opts.leaseName ?? 'castnet-controller',
      identity: opts.identity,
      leaseDurationMs: opts.leaseDurationMs,
      renewDeadlineMs: opts.renewDeadlineMs,
      retryPeriodMs: opts.retryPeriodMs,
      onStartedLeading: () => {
        this.metrics.leader.set(1);
        this.log('info', 'became leader', { identity: opts.identity });
        // A new leader verifies every status: the previous one may have died mid-write.
        this.resolver.markAllDirty();
        this.schedule();
      },
      onStoppedLeading: () => {
        this.metrics.leader.set(0);
        this.log('warn', 'lost leadership', { identity: opts.identity });
        this.pendingGroups.clear();
        this.pendingNetworks.clear();
      },
      onError: (err) => this.log('warn', 'leader election', { error: errorMessage(err) }),
    });

    const changed = (): void => this.schedule();
    this.networks = this.castnetCache('virtualNetwork', {
      onUpsert: (vn, previous) => {
        this.forgetEcho(this.writtenNetworks, vn.metadata.name, vn.status);
        // Our own status writes come back with an unchanged generation.
        if (previous?.metadata.generation === vn.metadata.generation) return;
        this.resolver.setNetwork(vn);
        this.schedule();
      },
      onDelete: (vn) => {
        this.writtenNetworks.delete(vn.metadata.name);
        this.resolver.deleteNetwork(vn.metadata.name);
        this.schedule();
      },
      onRelisted: () => this.writtenNetworks.clear(),
    });
    this.groups = this.castnetCache('multicastGroup', {
      onUpsert: (g, previous) => {
        this.forgetEcho(this.writtenGroups, groupKey(g), g.status);
        if (previous?.metadata.generation === g.metadata.generation) return;
        // A group's gauges carry its network and address: drop the old series when those change.
        if (previous) this.dropGroupMetrics(previous);
        this.resolver.setGroup(g);
        this.schedule();
      },
      onDelete: (g) => {
        this.writtenGroups.delete(groupKey(g));
        this.dropGroupMetrics(g);
        this.queue.forget(groupWork(g));
        this.resolver.deleteGroup(groupKey(g));
        this.schedule();
      },
      onRelisted: () => this.writtenGroups.clear(),
    });
    this.reports = this.castnetCache('membershipReport', {
      onUpsert: (r) => {
        this.resolver.setReport(r);
        this.schedule();
      },
      onDelete: (r) => {
        this.resolver.deleteReport(r.spec.node);
        this.schedule();
      },
    });
    this.pods = this.labeledCache(
      'pods',
      '/api/v1/pods',
      (page) => this.core.listPodForAllNamespaces(page),
      (p) => this.resolver.setPod(p),
      (namespace, name) => this.resolver.deletePod(namespace, name),
    );
    this.nodes = this.cache<V1Node>({
      what: 'nodes',
      path: '/api/v1/nodes',
      listPage: (page) => this.core.listNode(page),
      trim: trimNode,
      onUpsert: (n, previous) => {
        // Heartbeats change nothing the controller reads: whether and since when a node is Ready.
        if (previous && sameNodeState(n, previous)) return;
        this.schedule();
      },
      onDelete: changed,
    });
  }

  /** The watch cache of one of castnet's kinds, keeping its objects without managedFields. */
  private castnetCache<K extends CastnetKind>(
    kind: K,
    handlers: Pick<WatchCacheOptions<CastnetObjects[K]>, 'onUpsert' | 'onDelete' | 'onRelisted'>,
  ): WatchCache<CastnetObjects[K]> {
    return this.cache<CastnetObjects[K]>({
      what: `${KINDS[kind].kind}s`,
      path: collectionPath(kind),
      listPage: (page) => listCastnet(this.custom, kind, page),
      trim: dropManagedFields,
      ...handlers,
    });
  }

  /** A cache of Pods or VMIs: they matter here by identity and labels only. */
  private labeledCache(
    what: string,
    path: string,
    listPage: WatchCacheOptions<LabeledResource>['listPage'],
    set: (o: LabeledObject) => void,
    remove: (namespace: string, name: string) => void,
  ): WatchCache<LabeledResource> {
    return this.cache<LabeledResource>({
      what,
      path,
      listPage,
      trim: trimToLabels,
      onUpsert: (o, previous) => {
        // Their status changes all the time; only identity and labels matter here.
        if (previous && sameLabeled(o, previous)) return;
        set(toLabeledObject(o));
        this.schedule();
      },
      onDelete: (o) => {
        remove(o.metadata?.namespace ?? '', o.metadata?.name ?? '');
        this.schedule();
      },
    });
  }

  private cache<T extends KubernetesObject>(o: WatchCacheOptions<T>): WatchCache<T> {
    return new WatchCache<T>(this.kc, {
      onError: (err) => this.log('warn', 'watch failed; restarting', { error: err.message }),
      ...o,
    });
  }

  private get watched(): Partial<Record<WatchedResource, AnyWatchCache>> {
    return {
      networks: this.networks,
      groups: this.groups,
      reports: this.reports,
      pods: this.pods,
      nodes: this.nodes,
      vmis: this.vmis,
    };
  }

  /** Watch restarts of one watch cache. */
  restartsOf(resource: WatchedResource): number {
    return this.watched[resource]?.restarts ?? 0;
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  get metricsAddress(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, fields);
  }

  /**
   * Starts watching and campaigning; resolves once every cache holds a complete list. Rejects at
   * once when the kubeconfig's credentials cannot be obtained (say, its exec plugin fails).
   */
  async start(): Promise<void> {
    await checkCredentials(this.kc);
    if (this.opts.metrics) await this.serveMetrics(this.opts.metrics.host, this.opts.metrics.port);
    const caches: AnyWatchCache[] = [this.networks, this.groups, this.reports, this.pods, this.nodes];
    if (this.opts.watchVmis === true || (this.opts.watchVmis !== false && (await this.hasKubeVirt()))) {
      this.vmis = this.labeledCache(
        'KubeVirt VirtualMachineInstances',
        VMI_PATH,
        (page) => listVmis(this.custom, page),
        (v) => this.resolver.setVmi(v),
        (namespace, name) => this.resolver.deleteVmi(namespace, name),
      );
      caches.push(this.vmis);
    }
    await Promise.all(caches.map((c) => c.start()));
    this.synced = true;
    this.elector.start();
    const resyncMs = this.opts.resyncMs ?? 30_000;
    const resync = (): void => {
      this.resync = setTimeout(() => {
        this.schedule();
        resync();
      }, resyncMs);
    };
    resync();
  }

  private async hasKubeVirt(): Promise<boolean> {
    const apis = this.kc.makeApiClient(ApisApi);
    return apiCall('discover the API groups', () => servesApi(apis, VMI.group, VMI.version));
  }

  /** A group's gauges carry its network and address: drop its series when those change or it goes. */
  private dropGroupMetrics(g: MulticastGroup): void {
    this.metrics.groupMembers.remove(groupLabels(g));
    this.metrics.groupNodes.remove(groupLabels(g));
  }

  /** Forgets a written status once the watch brings it back. */
  private forgetEcho<S extends object>(written: Map<string, S>, key: string, status: S | undefined): void {
    const w = written.get(key);
    if (w && sameStatus(w, status)) written.delete(key);
  }

  /** Resolves once after the current burst of changes. */
  schedule(): void {
    if (this.debounce || this.stopped || !this.synced) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      try {
        this.resolvePass();
      } catch (err) {
        this.log('error', 'resolve failed', { error: errorMessage(err) });
      }
    }, this.opts.debounceMs ?? 50);
  }

  /** One pass over the whole cache: desired statuses for every group and network, and GC. */
  resolvePass(): void {
    if (!this.isLeader) return;
    const end = this.metrics.resolveSeconds.startTimer();
    const now = Date.now();
    const nowIso = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const networks = this.networks.list();
    const verdict = judgeNodes(
      this.reports.list().map((r) => r.spec.node),
      this.nodes.list().map(nodeState),
      now,
      this.opts.nodeGraceMs ?? 5 * 60_000,
      this.missingSince,
    );
    this.missingSince = verdict.missingSince;
    for (const node of verdict.collect) this.queue.add({ kind: 'reportCollection', node });
    this.resolver.setLiveNodes(verdict.live);
    if (now - this.lastFullResolve > (this.opts.fullResyncMs ?? 5 * 60_000)) {
      // Re-verify every status now and then: someone may have edited one, or a write was lost.
      this.resolver.markAllDirty();
      this.lastFullResolve = now;
    }

    const changed = this.resolver.resolveDirty();
    this.metrics.staleEndpoints.set(this.resolver.stale().length);
    for (const [key, r] of changed) {
      const g = this.resolver.groupsByKey.get(key)!;
      const current = this.groups.get(g.metadata.name, g.metadata.namespace)?.status;
      this.metrics.groupMembers.set(groupLabels(g), r.counts.members);
      this.metrics.groupNodes.set(groupLabels(g), r.counts.nodes);
      // Until the watch brings our own last write back, the cache is older than what is stored.
      const stored = this.writtenGroups.get(key) ?? current;
      // The resolver keeps the spec it was fed; conditions carry on from the stored status.
      const desired = desiredGroupStatus({ ...g, status: stored }, r, nowIso);
      if (sameStatus(stored, desired)) {
        this.pendingGroups.delete(key);
        continue;
      }
      this.pendingGroups.set(key, { desired, before: stored, uid: g.metadata.uid });
      this.queue.add(groupWork(g));
    }
    const statuses = desiredNetworkStatuses(
      networks,
      (n) => this.resolver.groupsOn(n),
      (n) => this.resolver.endpointsOn(n),
      nowIso,
    );
    for (const [name, desired] of statuses) {
      const stored = this.writtenNetworks.get(name) ?? this.networks.get(name)?.status;
      if (sameStatus(stored, desired)) {
        this.pendingNetworks.delete(name);
        continue;
      }
      this.pendingNetworks.set(name, desired);
      this.queue.add({ kind: 'networkStatus', name });
    }
    this.resolves++;
    this.metrics.queueDepth.set(this.queue.depth);
    end();
  }

  private async process(w: Work): Promise<void> {
    if (!this.isLeader) return;
    switch (w.kind) {
      case 'reportCollection':
        return this.collectReport(w.node);
      case 'groupStatus':
        return this.writeGroupStatus(w.namespace, w.name);
      case 'networkStatus':
        return this.writeNetworkStatus(w.name);
    }
  }

  private async collectReport(node: string): Promise<void> {
    try {
      await apiCall(`delete MembershipReport ${node} of a lost node`, () =>
        this.custom.deleteClusterCustomObject({ ...crd('membershipReport'), name: node }),
      );
      this.metrics.reportsCollected.inc();
      this.log('info', 'deleted the report of a lost node', { node });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async writeGroupStatus(namespace: string, name: string): Promise<void> {
    const key = `${namespace}/${name}`;
    const p = this.pendingGroups.get(key);
    if (!p) return;
    const written = await this.writeStatus('MulticastGroup', `${namespace}/${name}`, () =>
      this.custom.patchNamespacedCustomObjectStatus(
        { ...crd('multicastGroup'), namespace, name, body: { status: p.desired } },
        MERGE_PATCH,
      ),
    );
    if (!written) {
      this.queue.forget({ kind: 'groupStatus', namespace, name });
      this.pendingGroups.delete(key);
      return;
    }
    this.writtenGroups.set(key, p.desired);
    if (this.pendingGroups.get(key) === p) this.pendingGroups.delete(key);
    const events = groupEvents(p.before, {
      members: p.desired.members ?? [],
      conditions: p.desired.conditions ?? [],
    });
    for (const e of events) await this.emit({ name, namespace, uid: p.uid }, e);
  }

  private async writeNetworkStatus(name: string): Promise<void> {
    const desired = this.pendingNetworks.get(name);
    if (!desired) return;
    const written = await this.writeStatus('VirtualNetwork', name, () =>
      this.custom.patchClusterCustomObjectStatus(
        { ...crd('virtualNetwork'), name, body: { status: desired } },
        MERGE_PATCH,
      ),
    );
    if (!written) {
      this.queue.forget({ kind: 'networkStatus', name });
      this.pendingNetworks.delete(name);
      return;
    }
    this.writtenNetworks.set(name, desired);
    if (this.pendingNetworks.get(name) === desired) this.pendingNetworks.delete(name);
  }

  /** Writes one status; false when the object is gone. Counts the result. */
  private async writeStatus(
    kind: 'MulticastGroup' | 'VirtualNetwork',
    name: string,
    write: () => Promise<unknown>,
  ): Promise<boolean> {
    try {
      await apiCall(`write the status of ${kind} ${name}`, write);
      this.metrics.statusWrites.inc({ kind, result: 'ok' });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      this.metrics.statusWrites.inc({ kind, result: 'error' });
      throw err;
    }
  }

  private async emit(obj: { name: string; namespace: string; uid?: string }, e: EventDraft): Promise<void> {
    const key = `${obj.namespace}/${obj.name}`;
    const now = Date.now();
    if (!this.limiter.allow(key, now) || !this.globalLimiter.allow('*', now)) {
      this.metrics.eventsSuppressed.inc();
      return;
    }
    try {
      await postEvent(this.core, { apiVersion: API_VERSION, kind: 'MulticastGroup', ...obj }, e, {
        component: 'controller',
        instance: this.opts.identity,
      });
      this.metrics.events.inc({ type: e.type, reason: e.reason });
    } catch (err) {
      // Events are best effort: a lost one must not block or retry the status write.
      this.log('warn', 'failed to emit event', { object: key, reason: e.reason, error: errorMessage(err) });
    }
  }

  /** Waits until no resolve or write is pending (tests and graceful shutdown). */
  async settled(): Promise<void> {
    while (this.debounce) await sleep(10);
    await this.queue.idle();
  }

  private async serveMetrics(host: string, port: number): Promise<void> {
    this.server = http.createServer((req, res) => {
      void (async () => {
        if (req.url === '/metrics') {
          for (const [resource, cache] of Object.entries(this.watched)) {
            if (cache) this.metrics.informerRestarts.set({ resource }, cache.restarts);
          }
          this.metrics.queueDepth.set(this.queue.depth);
          res.setHeader('Content-Type', this.metrics.registry.contentType);
          res.end(await this.metrics.registry.metrics());
        } else if (req.url === '/healthz') {
          res.end('ok');
        } else if (req.url === '/readyz') {
          res.statusCode = this.synced ? 200 : 503;
          res.end(this.synced ? 'ok' : 'caches not synced');
        } else {
          res.statusCode = 404;
          res.end();
        }
      })();
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, resolve);
    });
  }

  async dispose(): Promise<void> {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.resync) clearTimeout(this.resync);
    await this.elector.dispose();
    this.queue.dispose();
    for (const cache of Object.values(this.watched)) cache?.dispose();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

function groupLabels(g: MulticastGroup): {
  namespace: string;
  group: string;
  network: string;
  address: string;
} {
  return {
    namespace: g.metadata.namespace ?? '',
    group: g.metadata.name,
    network: g.spec.network,
    address: g.spec.address,
  };
}

/** Server-side apply bookkeeping: per list item for a report's endpoints, and never read here. */
function dropManagedFields(o: KubernetesObject): void {
  delete o.metadata?.managedFields;
}

const sameLabeled = (a: LabeledResource, b: LabeledResource): boolean =>
  JSON.stringify(toLabeledObject(a)) === JSON.stringify(toLabeledObject(b));

/** Keeps a Node's identity, labels and Ready condition. */
function trimNode(n: V1Node): void {
  const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
  trimToLabels(n);
  // A listed Node's times are Dates and a watched one's are strings: keep Dates.
  n.status = {
    conditions: ready
      ? [
          {
            type: ready.type,
            status: ready.status,
            ...(ready.lastTransitionTime ? { lastTransitionTime: new Date(ready.lastTransitionTime) } : {}),
          },
        ]
      : [],
  };
}

function nodeState(n: V1Node): NodeState {
  const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
  // A Node without a Ready condition was just registered (or is a test fixture): treat it as ready.
  return {
    name: n.metadata?.name ?? '',
    ready: !ready || ready.status === 'True',
    since: ready?.lastTransitionTime?.toISOString(),
  };
}

const sameNodeState = (a: V1Node, b: V1Node): boolean =>
  JSON.stringify(nodeState(a)) === JSON.stringify(nodeState(b));
