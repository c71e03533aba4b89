// Leader election on a coordination.k8s.io/v1 Lease, following client-go's leaderelection: the holder
// renews every retry period; others take over only after observing no renewal for a whole lease
// duration (measured on their own clock, so clock skew between replicas does not matter).
import { V1MicroTime, type CoordinationV1Api, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import { apiCall, isConflict, isNotFound } from '../k8s/api-error.js';

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

export class LeaderElector {
  isLeader = false;
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private observed = '';
  private observedAt = 0;
  private lastRenew = 0;

  constructor(
    private readonly leases: CoordinationV1Api,
    private readonly opts: LeaderOptions,
  ) {}

  private get what(): string {
    return `Lease ${this.opts.namespace}/${this.opts.name}`;
  }

  private read(): Promise<V1Lease> {
    const { namespace, name } = this.opts;
    return apiCall(`read ${this.what}`, () => this.leases.readNamespacedLease({ namespace, name }));
  }

  /** Writes `lease` back; its resourceVersion makes this a compare-and-swap (409 when it moved on). */
  private replace(lease: V1Lease): Promise<V1Lease> {
    const { namespace, name } = this.opts;
    return apiCall(`update ${this.what}`, () =>
      this.leases.replaceNamespacedLease({ namespace, name, body: lease }),
    );
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
    const desired = (prev?: V1LeaseSpec): V1LeaseSpec => ({
      holderIdentity: me,
      leaseDurationSeconds: Math.ceil(this.durationMs / 1000),
      acquireTime: prev?.holderIdentity === me && prev.acquireTime ? prev.acquireTime : new V1MicroTime(now),
      renewTime: new V1MicroTime(now),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (prev && prev.holderIdentity !== me ? 1 : 0),
    });
    let lease: V1Lease;
    try {
      lease = await this.read();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const { namespace, name } = this.opts;
      await apiCall(`create ${this.what}`, () =>
        this.leases.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: desired() },
        }),
      );
      this.setLeader(true);
      return true;
    }
    const spec = lease.spec ?? {};
    // client-node hands MicroTimes back as the strings the apiserver sent.
    const record = `${spec.holderIdentity ?? ''}@${String(spec.renewTime ?? '')}`;
    if (record !== this.observed) {
      this.observed = record;
      this.observedAt = now;
    }
    const holder = spec.holderIdentity;
    const expired = !holder || now - this.observedAt > (spec.leaseDurationSeconds ?? 15) * 1000;
    if (holder !== me && !expired) {
      this.setLeader(false);
      return false;
    }
    try {
      // Of two replicas racing, one gets 409.
      await this.replace({ ...lease, spec: desired(spec) });
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
    this.setLeader(true);
    return true;
  }

  /** Stops campaigning; a leader releases the lease so a standby takes over at once. */
  async dispose(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.isLeader) return;
    this.setLeader(false);
    try {
      const lease = await this.read();
      if (lease.spec?.holderIdentity === this.opts.identity) {
        await this.replace({
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 },
        });
      }
    } catch (err) {
      this.opts.onError?.(err);
    }
  }
}
