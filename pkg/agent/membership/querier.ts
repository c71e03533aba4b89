// The agent as IGMP/MLD querier on every endpoint link: it feeds the endpoints' reports to the
// membership table, injects the queries the table asks for, runs its timers, and reports this
// node's memberships to the lookup service. On restart it first restores what it had published, so
// no member is lost while the startup queries refresh the state.
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { Endpoint, EndpointSource } from '../../endpoint/table';
import { plainIp } from '../../endpoint/table';
import { formatMac } from '../../frame/addr';
import type { ParsedFrame } from '../../frame/ethernet';
import { buildIgmpQuery, buildMldQuery, linkLocalFromMac } from '../../igmp';
import type { Logger } from '../../log/log';
import type { LookupService, MembershipRecord } from '../../lookup/port';
import { MembershipTable, type MembershipConfig, type Outcome, type QueryRequest } from '../../membership';

export interface QuerierOptions {
  node: string;
  config?: Partial<MembershipConfig>;
  endpoints: EndpointSource;
  lookup: LookupService;
  /** Injects a complete Ethernet frame into an endpoint's link. */
  inject: (endpointId: number, frame: Uint8Array) => void;
  /** Called with this node's records after every change (the data plane resolves with them). */
  onRecords: (records: MembershipRecord[]) => void;
  log: Logger;
  now?: () => number;
}

/** The querier's own MAC: locally administered, stable per node. */
export function querierMac(node: string): string {
  const h = createHash('sha256').update(`castnet-querier/${node}`).digest();
  h[0] = (h[0]! & 0xfe) | 0x02;
  return formatMac(h);
}

export class Querier {
  private readonly table: MembershipTable;
  private readonly mac: string;
  private readonly now: () => number;
  private readonly endpoints = new Map<number, Endpoint>();
  private timer: NodeJS.Timeout | undefined;
  private restored = false;
  private reportPending = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly o: QuerierOptions) {
    this.table = new MembershipTable(o.node, o.config);
    this.mac = querierMac(o.node);
    this.now = o.now ?? Date.now;
    this.unsubscribe.push(
      this.table.onChange((records) => {
        o.onRecords(records);
        this.report();
      }),
    );
    for (const e of o.endpoints.endpoints()) this.addEndpoint(e);
    this.unsubscribe.push(
      o.endpoints.subscribe((ev) =>
        ev.type === 'ready' ? this.addEndpoint(ev.endpoint) : this.removeEndpoint(ev.endpoint),
      ),
    );
  }

  /**
   * Restores this node's previously published memberships (from the lookup service's directory), once,
   * before anything is reported: an agent restart must not withdraw members it has not re-heard yet.
   */
  restore(records: readonly MembershipRecord[]): void {
    if (this.restored) return;
    this.restored = true;
    this.apply(this.table.restore(records, this.now()));
    this.o.onRecords(this.table.records());
    this.report();
  }

  /** `frame` was parsed from `bytes` (offsets are absolute); the table reads it now, before the ring moves on. */
  handleFrame(endpointId: number, frame: ParsedFrame, bytes: Uint8Array): void {
    this.apply(this.table.handleFrame(endpointId, frame, bytes, this.now()));
  }

  records(): MembershipRecord[] {
    return this.table.records();
  }

  counters(): Record<string, number> {
    return this.table.counters();
  }

  close(): void {
    for (const u of this.unsubscribe) u();
    if (this.timer) clearTimeout(this.timer);
  }

  private addEndpoint(e: Endpoint): void {
    if (this.endpoints.has(e.endpointId)) return;
    this.endpoints.set(e.endpointId, e);
    this.apply(this.table.addEndpoint({ network: e.network, endpointId: e.endpointId }, this.now()));
  }

  private removeEndpoint(e: Endpoint): void {
    if (!this.endpoints.delete(e.endpointId)) return;
    this.apply(this.table.removeEndpoint(e.endpointId));
  }

  private apply(o: Outcome): void {
    for (const q of o.queries) this.sendQuery(q);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    const next = this.table.nextDeadline();
    if (!Number.isFinite(next)) return;
    this.timer = setTimeout(() => this.apply(this.table.tick(this.now())), Math.max(0, next - this.now()));
    this.timer.unref();
  }

  private report(): void {
    // Until restored, the table may not yet hold members heard before a restart: do not withdraw them.
    if (!this.restored || this.reportPending) return;
    this.reportPending = true;
    queueMicrotask(() => {
      this.reportPending = false;
      this.o.lookup.reportMemberships(this.o.node, this.table.records()).catch((err: Error) =>
        // The lookup client re-sends its last report when it reconnects.
        this.o.log.warn('membership report not accepted yet', { error: err.message }),
      );
    });
  }

  private sendQuery(q: QueryRequest): void {
    const e = this.endpoints.get(q.endpointId);
    if (!e) return;
    const ips = e.ips.map(plainIp);
    const v4 = ips.find((ip) => isIPv4(ip));
    const common = {
      querierMac: this.mac,
      group: q.group,
      sources: q.sources,
      maxResponseMs: q.maxResponseMs,
      robustness: 2,
      queryIntervalSec: 125,
      suppressRouterSide: q.suppressRouterSide,
    };
    try {
      const wantV4 = q.group ? !q.mld : v4 !== undefined;
      const wantV6 = q.group ? q.mld : ips.some((ip) => isIPv6(ip));
      // The querier's IPv4 source: 0.0.0.0 is what snooping queriers use (RFC 4541 2.1.1); hosts accept it.
      if (wantV4) this.o.inject(e.endpointId, buildIgmpQuery({ ...common, querierIp: '0.0.0.0' }));
      if (wantV6)
        this.o.inject(e.endpointId, buildMldQuery({ ...common, querierIp: linkLocalFromMac(this.mac) }));
    } catch (err) {
      this.o.log.warn('cannot build query', { endpoint: e.endpointId, error: (err as Error).message });
    }
  }
}
