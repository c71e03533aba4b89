// Leader election on a coordination.k8s.io/v1 Lease, following client-go's leaderelection: the holder
// renews every retry period; others take over only after observing no renewal for a whole lease
// duration (measured on their own clock, so clock skew between replicas does not matter).
import { ApiError, isNotFound, type ApiClient } from '../k8s/client.js';

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onError?: (err: unknown) => void;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  isLeader = false;
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private observed = '';
  private observedAt = 0;
  private lastRenew = 0;

  constructor(
    private readonly api: ApiClient,
    private readonly opts: LeaderOptions,
  ) {}

  private get path(): string {
    const { namespace, name } = this.opts;
    return `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`;
  }

  private get durationMs(): number {
    return this.opts.leaseDurationMs ?? 15_000;
  }

  start(): void {
    this.stopped = false;
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) this.lastRenew = Date.now();
    } catch (err) {
      this.opts.onError?.(err);
    }
    if (this.isLeader && Date.now() - this.lastRenew > (this.opts.renewDeadlineMs ?? 10_000)) {
      this.setLeader(false);
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.opts.retryPeriodMs ?? 2_000);
  }

  private setLeader(leader: boolean): void {
    if (leader === this.isLeader) return;
    this.isLeader = leader;
    if (leader) this.opts.onStartedLeading();
    else this.opts.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const me = this.opts.identity;
    const desired = (prev?: Lease['spec']): Lease['spec'] => ({
      holderIdentity: me,
      leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
      acquireTime: prev?.holderIdentity === me && prev.acquireTime ? prev.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (prev && prev.holderIdentity !== me ? 1 : 0),
    });
    let lease: Lease;
    try {
      lease = await this.api.get<Lease>(this.path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const { namespace, name } = this.opts;
      await this.api.create(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: desired(),
      });
      this.setLeader(true);
      return true;
    }
    const record = `${lease.spec.holderIdentity ?? ''}@${lease.spec.renewTime ?? ''}`;
    if (record !== this.observed) {
      this.observed = record;
      this.observedAt = now;
    }
    const holder = lease.spec.holderIdentity;
    const expired = !holder || now - this.observedAt > (lease.spec.leaseDurationSeconds ?? 15) * 1000;
    if (holder !== me && !expired) {
      this.setLeader(false);
      return false;
    }
    try {
      // The resourceVersion makes this a compare-and-swap: of two replicas racing, one gets 409.
      await this.api.replace(this.path, { ...lease, spec: desired(lease.spec) });
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) return false;
      throw err;
    }
    this.setLeader(true);
    return true;
  }

  /** Stops campaigning; a leader releases the lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.isLeader) return;
    this.setLeader(false);
    try {
      const lease = await this.api.get<Lease>(this.path);
      if (lease.spec.holderIdentity === this.opts.identity) {
        await this.api.replace(this.path, {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 },
        });
      }
    } catch (err) {
      this.opts.onError?.(err);
    }
  }
}
