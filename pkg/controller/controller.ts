// `castnet controller`: informers feed one in-memory picture of the cluster; after each burst of changes
// the leader resolves every group (resolve.ts, pure) and queues the statuses that differ; workers write
// them through the status subresource with per-key retries, then emit rate-limited Events.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiClient, isNotFound, resourcePath } from '../k8s/client.js';
import { Informer } from '../k8s/informer.js';
import { toLabeledObject, trimToLabels } from '../k8s/labeled.js';
import type { Connection } from '../k8s/kubeconfig.js';
import type {
  MembershipReport,
  MulticastGroup,
  MulticastGroupStatus,
  NodeState,
  VirtualNetwork,
  VirtualNetworkStatus,
} from '../k8s/types.js';
import { API_VERSION, KINDS } from '../k8s/types.js';
import { postEvent } from '../k8s/events.js';
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

interface Obj {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    labels?: Record<string, string>;
    resourceVersion?: string;
  };
  spec?: unknown;
  status?: unknown;
}

interface PendingStatus<S> {
  path: string;
  desired: S;
  before?: MulticastGroupStatus;
  involved?: { name: string; namespace: string; uid?: string };
}

const castnet = (plural: string): string => resourcePath(API_VERSION, plural);

export class Controller {
  readonly api: ApiClient;
  readonly metrics: ControllerMetrics;
  private readonly informers: Record<string, Informer<Obj>> = {};
  private readonly queue: WorkQueue;
  private readonly elector: LeaderElector;
  private readonly limiter: EventLimiter;
  /** Across all groups, so a controller start or a node loss cannot flood the apiserver with Events. */
  private readonly globalLimiter = new EventLimiter(100, 100);
  private readonly pending = new Map<string, PendingStatus<MulticastGroupStatus | VirtualNetworkStatus>>();
  /** Statuses written whose watch echo has not arrived yet, by work-queue key. */
  private readonly written = new Map<string, MulticastGroupStatus | VirtualNetworkStatus>();
  private missingSince = new Map<string, number>();
  private readonly resolver = new GroupResolver(true);
  /** What each informer's last full list held, to find deletions missed while a watch was down. */
  private readonly known = new Map<string, Map<string, Obj>>();
  private lastFullResolve = Date.now();
  private debounce?: NodeJS.Timeout;
  private resync?: NodeJS.Timeout;
  private server?: http.Server;
  private synced = false;
  private stopped = false;
  resolves = 0;

  constructor(
    conn: Connection,
    readonly opts: ControllerOptions,
  ) {
    this.api = new ApiClient(conn);
    this.metrics = new ControllerMetrics({ processMetrics: opts.processMetrics });
    this.limiter = new EventLimiter(opts.eventBurst ?? 5, opts.eventIntervalMs ?? 10_000);
    this.queue = new WorkQueue((key) => this.process(key), {
      workers: opts.statusWriters ?? 8,
      onRetry: (key, err, attempt) => {
        this.metrics.queueRetries.inc();
        this.log('warn', 'retrying', { key, attempt, error: String(err) });
      },
    });
    this.elector = new LeaderElector(this.api, {
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
        this.pending.clear();
      },
      onError: (err) => this.log('warn', 'leader election', { error: String(err) }),
    });
  }

  /** Watch restarts of one informer (networks, groups, reports, pods, nodes, vmis). */
  restartsOf(informer: string): number {
    return this.informers[informer]?.restarts ?? 0;
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

  async start(): Promise<void> {
    if (this.opts.metrics) await this.serveMetrics(this.opts.metrics.host, this.opts.metrics.port);
    const watch = (name: string, path: string, trim?: (o: Obj) => void): void => {
      this.informers[name] = new Informer<Obj>(this.api, path, {
        onChange: (obj, previous) => {
          this.forgetEchoed(name, obj);
          const known = this.known.get(name) ?? new Map<string, Obj>();
          this.known.set(name, known);
          if (!obj && !previous) this.syncResolver(name);
          else if (!obj) {
            known.delete(objectKey(previous!));
            this.forget(name, previous!);
          } else {
            known.set(objectKey(obj), obj);
            if (previous && !matters(name, obj, previous)) return;
            if (name === 'groups' && previous) this.dropGroupMetrics(previous as unknown as MulticastGroup);
            this.feed(name, obj);
          }
          this.schedule();
        },
        onError: (err, p) => this.log('warn', 'watch failed; restarting', { path: p, error: String(err) }),
        trim,
      });
    };
    watch('networks', castnet(KINDS.virtualNetwork.plural), dropManagedFields);
    watch('groups', castnet(KINDS.multicastGroup.plural), dropManagedFields);
    watch('reports', castnet(KINDS.membershipReport.plural), dropManagedFields);
    watch('pods', '/api/v1/pods', trimToLabels);
    watch('nodes', '/api/v1/nodes', trimNode);
    if (this.opts.watchVmis === true || (this.opts.watchVmis !== false && (await this.hasKubeVirt()))) {
      watch('vmis', '/apis/kubevirt.io/v1/virtualmachineinstances', trimToLabels);
    }
    await Promise.all(Object.values(this.informers).map((i) => i.start()));
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
    try {
      await this.api.get('/apis/kubevirt.io/v1');
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Hands one added or changed object to the resolver. */
  private feed(informer: string, obj: Obj): void {
    const r = this.resolver;
    switch (informer) {
      case 'networks':
        return r.setNetwork(obj as unknown as VirtualNetwork);
      case 'groups':
        return r.setGroup(obj as unknown as MulticastGroup);
      case 'reports':
        return r.setReport(obj as unknown as MembershipReport);
      case 'pods':
        return r.setPod(toLabeledObject(obj));
      case 'vmis':
        return r.setVmi(toLabeledObject(obj));
    }
  }

  /** Tells the resolver an object is gone. */
  private forget(informer: string, obj: Obj): void {
    const r = this.resolver;
    const m = obj.metadata ?? {};
    switch (informer) {
      case 'networks':
        return r.deleteNetwork(m.name ?? '');
      case 'groups': {
        const g = obj as unknown as MulticastGroup;
        this.dropGroupMetrics(g);
        this.queue.forget(`group/${groupKey(g)}`);
        return r.deleteGroup(groupKey(g));
      }
      case 'reports':
        return r.deleteReport((obj as unknown as MembershipReport).spec.node);
      case 'pods':
        return r.deletePod(m.namespace ?? '', m.name ?? '');
      case 'vmis':
        return r.deleteVmi(m.namespace ?? '', m.name ?? '');
    }
  }

  /** A group's gauges carry its network and address: drop the old series when those change or it goes. */
  private dropGroupMetrics(g: MulticastGroup): void {
    this.metrics.groupMembers.remove(groupLabels(g));
    this.metrics.groupNodes.remove(groupLabels(g));
  }

  /** After a (re-)list: feed everything listed and forget what the resolver knew but is gone. */
  private syncResolver(informer: string): void {
    const inf = this.informers[informer];
    if (!inf) return;
    const now = new Map(inf.list().map((o) => [objectKey(o), o]));
    const before = this.known.get(informer) ?? new Map<string, Obj>();
    for (const [k, o] of before) if (!now.has(k)) this.forget(informer, o);
    for (const o of now.values()) this.feed(informer, o);
    this.known.set(informer, now);
  }

  private forgetEchoed(informer: string, obj: Obj | undefined): void {
    if (informer !== 'groups' && informer !== 'networks') return;
    if (!obj) {
      // A re-list or a deletion: the cache is authoritative again.
      this.written.clear();
      return;
    }
    const m = obj.metadata ?? {};
    const key = informer === 'groups' ? `group/${m.namespace}/${m.name}` : `network/${m.name}`;
    const w = this.written.get(key);
    if (w && sameStatus(w as MulticastGroupStatus, obj.status as MulticastGroupStatus))
      this.written.delete(key);
  }

  /** Resolves once after the current burst of changes. */
  schedule(): void {
    if (this.debounce || this.stopped || !this.synced) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      try {
        this.resolvePass();
      } catch (err) {
        this.log('error', 'resolve failed', { error: String(err) });
      }
    }, this.opts.debounceMs ?? 50);
  }

  private list<T>(name: string): T[] {
    return (this.informers[name]?.list() ?? []) as unknown as T[];
  }

  /** One pass over the whole cache: desired statuses for every group and network, and GC. */
  resolvePass(): void {
    if (!this.isLeader) return;
    const end = this.metrics.resolveSeconds.startTimer();
    const now = Date.now();
    const nowIso = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const networks = this.list<VirtualNetwork>('networks');
    const reports = this.list<MembershipReport>('reports');
    const verdict = judgeNodes(
      reports.map((r) => r.spec.node),
      this.list<Obj>('nodes').map(nodeState),
      now,
      this.opts.nodeGraceMs ?? 5 * 60_000,
      this.missingSince,
    );
    this.missingSince = verdict.missingSince;
    for (const name of verdict.collect) this.queue.add(`report-gc/${name}`);
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
      const current = (
        this.informers.groups?.get(g.metadata.name, g.metadata.namespace) as MulticastGroup | undefined
      )?.status;
      this.metrics.groupMembers.set(groupLabels(g), r.counts.members);
      this.metrics.groupNodes.set(groupLabels(g), r.counts.nodes);
      // The resolver keeps the spec it was fed; conditions carry on from the stored status.
      const stored = (this.written.get(`group/${key}`) as MulticastGroupStatus | undefined) ?? current;
      const desired = desiredGroupStatus({ ...g, status: stored }, r, nowIso);
      this.offer(`group/${key}`, current, desired, {
        path: resourcePath(API_VERSION, KINDS.multicastGroup.plural, {
          namespace: g.metadata.namespace,
          name: g.metadata.name,
          subresource: 'status',
        }),
        desired,
        involved: {
          name: g.metadata.name,
          namespace: g.metadata.namespace ?? 'default',
          uid: g.metadata.uid,
        },
      });
    }
    const statuses = desiredNetworkStatuses(
      networks,
      (n) => this.resolver.groupsOn(n),
      (n) => this.resolver.endpointsOn(n),
      nowIso,
    );
    for (const [name, desired] of statuses) {
      const vn = networks.find((n) => n.metadata.name === name)!;
      this.offer(`network/${name}`, vn.status, desired, {
        path: resourcePath(API_VERSION, KINDS.virtualNetwork.plural, { name, subresource: 'status' }),
        desired,
      });
    }
    this.resolves++;
    this.metrics.queueDepth.set(this.queue.depth);
    end();
  }

  private offer<S extends object>(
    key: string,
    current: S | undefined,
    desired: S,
    p: PendingStatus<S>,
  ): void {
    // Until the watch brings our own last write back, the cache is older than what is stored.
    const stored = (this.written.get(key) as S | undefined) ?? current;
    if (sameStatus(stored as MulticastGroupStatus, desired as MulticastGroupStatus)) {
      this.pending.delete(key);
      return;
    }
    if (p.involved) p.before = stored as MulticastGroupStatus | undefined;
    this.pending.set(key, p as PendingStatus<MulticastGroupStatus | VirtualNetworkStatus>);
    this.queue.add(key);
  }

  private async process(key: string): Promise<void> {
    if (!this.isLeader) return;
    if (key.startsWith('report-gc/')) {
      const node = key.slice('report-gc/'.length);
      try {
        await this.api.delete(resourcePath(API_VERSION, KINDS.membershipReport.plural, { name: node }));
        this.metrics.reportsCollected.inc();
        this.log('info', 'deleted the report of a lost node', { node });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      return;
    }
    const p = this.pending.get(key);
    if (!p) return;
    const kind = key.startsWith('group/') ? 'MulticastGroup' : 'VirtualNetwork';
    try {
      await this.api.patch(p.path, { status: p.desired }, 'merge');
      this.metrics.statusWrites.inc({ kind, result: 'ok' });
    } catch (err) {
      if (isNotFound(err)) {
        this.queue.forget(key);
        this.pending.delete(key);
        return;
      }
      this.metrics.statusWrites.inc({ kind, result: 'error' });
      throw new Error(
        `failed to write the status of ${key}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    this.written.set(key, p.desired);
    if (this.pending.get(key) === p) this.pending.delete(key);
    if (p.involved) {
      const st = p.desired as MulticastGroupStatus;
      const events = groupEvents(p.before, { members: st.members ?? [], conditions: st.conditions ?? [] });
      for (const e of events) await this.emit(p.involved, e);
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
      await postEvent(this.api, { apiVersion: API_VERSION, kind: 'MulticastGroup', ...obj }, e, {
        component: 'controller',
        instance: this.opts.identity,
      });
      this.metrics.events.inc({ type: e.type, reason: e.reason });
    } catch (err) {
      // Events are best effort: a lost one must not block or retry the status write.
      this.log('warn', 'failed to emit event', { object: key, reason: e.reason, error: String(err) });
    }
  }

  /** Waits until no resolve or write is pending (tests and graceful shutdown). */
  async settled(): Promise<void> {
    while (this.debounce) await new Promise((r) => setTimeout(r, 10));
    await this.queue.idle();
  }

  private async serveMetrics(host: string, port: number): Promise<void> {
    this.server = http.createServer((req, res) => {
      void (async () => {
        if (req.url === '/metrics') {
          for (const [name, inf] of Object.entries(this.informers)) {
            this.metrics.informerRestarts.set({ resource: name }, inf.restarts);
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

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.resync) clearTimeout(this.resync);
    await this.elector.stop();
    this.queue.stop();
    for (const i of Object.values(this.informers)) i.stop();
    this.api.close();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/**
 * Whether an update can change any resolution. Our own status writes come back as updates of groups
 * and networks with an unchanged generation; pods and nodes update their status all the time, but
 * only what trim() keeps (labels, the Ready condition) matters. The periodic resync covers the rest.
 */
function matters(informer: string, obj: Obj, previous: Obj): boolean {
  if (informer === 'groups' || informer === 'networks') {
    return obj.metadata?.generation !== previous.metadata?.generation;
  }
  if (informer === 'reports') return true;
  const essence = (o: Obj): string =>
    JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return essence(obj) !== essence(previous);
}

const objectKey = (o: Obj): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

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
function dropManagedFields(o: Obj): void {
  delete (o.metadata as { managedFields?: unknown } | undefined)?.managedFields;
}

interface NodeCondition {
  type: string;
  status: string;
  lastTransitionTime?: string;
}

function trimNode(o: Obj): void {
  const conditions = ((o.status as { conditions?: NodeCondition[] } | undefined)?.conditions ?? []).filter(
    (c) => c.type === 'Ready',
  );
  trimToLabels(o);
  o.status = { conditions };
}

function nodeState(o: Obj): NodeState {
  const ready = ((o.status as { conditions?: NodeCondition[] } | undefined)?.conditions ?? []).find(
    (c) => c.type === 'Ready',
  );
  // A Node without a Ready condition was just registered (or is a test fixture): treat it as ready.
  return {
    name: o.metadata?.name ?? '',
    ready: !ready || ready.status === 'True',
    since: ready?.lastTransitionTime,
  };
}
