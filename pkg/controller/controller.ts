// `castnet controller`: informers feed one in-memory picture of the cluster; after each burst of changes
// the leader resolves every group (resolve.ts, pure) and queues the statuses that differ; workers write
// them through the status subresource with per-key retries, then emit rate-limited Events.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiClient, isNotFound, resourcePath } from '../k8s/client';
import { Informer } from '../k8s/informer';
import type { Connection } from '../k8s/kubeconfig';
import type {
  LabeledObject,
  MembershipReport,
  MulticastGroup,
  MulticastGroupStatus,
  NodeState,
  VirtualNetwork,
  VirtualNetworkStatus,
} from '../k8s/types';
import { API_VERSION, KINDS } from '../k8s/types';
import { EventLimiter, groupEvents, type EventDraft } from './events';
import { judgeNodes } from './gc';
import { LeaderElector } from './leader';
import { ControllerMetrics } from './metrics';
import { desiredNetworkStatuses } from './networks';
import { groupKey, resolveGroups } from './resolve';
import { desiredGroupStatus, sameStatus } from './status';
import { WorkQueue } from './workqueue';

export interface ControllerOptions {
  identity: string;
  leaseNamespace: string;
  leaseName?: string;
  /** A node NotReady or deleted longer than this stops counting; deleted ones lose their report. */
  nodeGraceMs?: number;
  /** Coalesces bursts of watch events into one resolve. */
  debounceMs?: number;
  /** Re-resolves this often even without events (grace periods expire silently). */
  resyncMs?: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Serve /metrics, /healthz and /readyz; port 0 picks a free port. */
  metrics?: { host: string; port: number };
  /** Watch KubeVirt VMIs for vmi selectors: 'auto' does when the kubevirt.io API exists. */
  watchVmis?: boolean | 'auto';
  eventBurst?: number;
  eventIntervalMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

interface Obj {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
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
  readonly metrics = new ControllerMetrics();
  private readonly informers: Record<string, Informer<Obj>> = {};
  private readonly queue: WorkQueue;
  private readonly elector: LeaderElector;
  private readonly limiter: EventLimiter;
  private readonly pending = new Map<string, PendingStatus<MulticastGroupStatus | VirtualNetworkStatus>>();
  private missingSince = new Map<string, number>();
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
    this.limiter = new EventLimiter(opts.eventBurst ?? 5, opts.eventIntervalMs ?? 10_000);
    this.queue = new WorkQueue((key) => this.process(key), {
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
        onChange: () => this.schedule(),
        onError: (err, p) => this.log('warn', 'watch failed; restarting', { path: p, error: String(err) }),
        trim,
      });
    };
    watch('networks', castnet(KINDS.virtualNetwork.plural));
    watch('groups', castnet(KINDS.multicastGroup.plural));
    watch('reports', castnet(KINDS.membershipReport.plural));
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
    const groups = this.list<MulticastGroup>('groups');
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

    const resolution = resolveGroups({
      networks,
      groups,
      reports,
      pods: this.list<Obj>('pods').map(labeled),
      vmis: this.list<Obj>('vmis').map(labeled),
      liveNodes: verdict.live,
      checkPods: true,
    });
    this.metrics.staleEndpoints.set(resolution.stale.length);
    this.metrics.groupMembers.reset();
    this.metrics.groupNodes.reset();
    for (const g of groups) {
      const key = groupKey(g);
      const r = resolution.groups.get(key)!;
      const labels = {
        namespace: g.metadata.namespace ?? '',
        group: g.metadata.name,
        network: g.spec.network,
        address: g.spec.address,
      };
      this.metrics.groupMembers.set(labels, r.counts.members);
      this.metrics.groupNodes.set(labels, r.counts.nodes);
      const desired = desiredGroupStatus(g, r, nowIso);
      this.offer(`group/${key}`, g.status, desired, {
        path: resourcePath(API_VERSION, KINDS.multicastGroup.plural, {
          namespace: g.metadata.namespace,
          name: g.metadata.name,
          subresource: 'status',
        }),
        desired,
        before: g.status,
        involved: {
          name: g.metadata.name,
          namespace: g.metadata.namespace ?? 'default',
          uid: g.metadata.uid,
        },
      });
    }
    for (const [name, desired] of desiredNetworkStatuses(networks, groups, reports, nowIso)) {
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
    if (sameStatus(current as MulticastGroupStatus, desired as MulticastGroupStatus)) {
      this.pending.delete(key);
      return;
    }
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
    if (this.pending.get(key) === p) this.pending.delete(key);
    if (p.involved) {
      const st = p.desired as MulticastGroupStatus;
      const events = groupEvents(p.before, { members: st.members ?? [], conditions: st.conditions ?? [] });
      for (const e of events) await this.emit(p.involved, e);
    }
  }

  private async emit(obj: { name: string; namespace: string; uid?: string }, e: EventDraft): Promise<void> {
    const key = `${obj.namespace}/${obj.name}`;
    if (!this.limiter.allow(key, Date.now())) {
      this.metrics.eventsSuppressed.inc();
      return;
    }
    const ts = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      await this.api.create(`/api/v1/namespaces/${encodeURIComponent(obj.namespace)}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${obj.name}.`, namespace: obj.namespace },
        involvedObject: { apiVersion: API_VERSION, kind: 'MulticastGroup', ...obj },
        type: e.type,
        reason: e.reason,
        message: e.message.slice(0, 1024),
        source: { component: 'castnet-controller' },
        reportingComponent: 'castnet.io/controller',
        reportingInstance: this.opts.identity,
        firstTimestamp: ts,
        lastTimestamp: ts,
        count: 1,
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

function labeled(o: Obj): LabeledObject {
  return {
    namespace: o.metadata?.namespace ?? '',
    name: o.metadata?.name ?? '',
    uid: o.metadata?.uid,
    labels: o.metadata?.labels ?? {},
  };
}

/** Pods and VMIs: the controller needs identity and labels only; at 100k pods the rest is gigabytes. */
function trimToLabels(o: Obj): void {
  const m = o.metadata ?? {};
  o.metadata = {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    labels: m.labels,
    resourceVersion: m.resourceVersion,
  };
  delete o.spec;
  delete o.status;
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
