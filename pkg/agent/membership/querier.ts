// The agent as IGMP/MLD querier on every endpoint link: it feeds the endpoints' reports to the
// membership tables, injects the queries they ask for, runs their timers, and reports this node's
// memberships to the lookup service. Each network has its own table, with that VirtualNetwork's
// query interval, robustness and group limit. On restart the querier first restores what it had
// published, so no member is lost while the startup queries refresh the state.
import { isIPv4, isIPv6 } from 'node:net';
import type { Disposable } from '../../base/lifecycle.js';
import type { Endpoint, EndpointSource } from '../../endpoint/table.js';
import { plainIp } from '../../endpoint/table.js';
import { formatMac } from '../../netaddr/address.js';
import type { ParsedFrame } from '../../frame/ethernet.js';
import { buildIgmpQuery, buildMldQuery, linkLocalFromMac } from '../../igmp/index.js';
import type { Logger } from '../../log/log.js';
import type { LookupService, MembershipRecord, NetworkSpec } from '../../lookup/port.js';
import {
  DEFAULT_MEMBERSHIP_CONFIG,
  MembershipTable,
  type MembershipConfig,
  type Outcome,
  type QueryRequest,
} from '../../membership/index.js';
import { createHash } from 'node:crypto';
import { errorMessage } from '../../base/errors.js';

export interface QuerierOptions {
  node: string;
  /** The agent's own settings; a VirtualNetwork's querier settings override them for its links. */
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
  return formatMac(h.subarray(0, 6));
}

/** A network's querier settings over the agent's; the response interval stays below the query interval. */
export function networkMembershipConfig(
  base: Partial<MembershipConfig>,
  network: NetworkSpec | undefined,
): Partial<MembershipConfig> {
  const q = network?.querier;
  const cfg: Partial<MembershipConfig> = { ...base };
  if (q?.queryIntervalSeconds) cfg.queryIntervalMs = q.queryIntervalSeconds * 1000;
  if (q?.robustness) cfg.robustness = q.robustness;
  if (q?.maxGroupsPerEndpoint) cfg.maxGroupsPerEndpoint = q.maxGroupsPerEndpoint;
  const qi = cfg.queryIntervalMs ?? DEFAULT_MEMBERSHIP_CONFIG.queryIntervalMs;
  const qri = cfg.queryResponseIntervalMs ?? DEFAULT_MEMBERSHIP_CONFIG.queryResponseIntervalMs;
  if (qri >= qi) cfg.queryResponseIntervalMs = Math.floor(qi / 2);
  return cfg;
}

interface NetworkTable {
  table: MembershipTable;
  /** The settings it was made with, to notice a change of the VirtualNetwork. */
  key: string;
  cfg: Required<Pick<MembershipConfig, 'robustness' | 'queryIntervalMs'>>;
  unsubscribe: () => void;
}

export class Querier implements Disposable {
  private readonly tables = new Map<string, NetworkTable>();
  private networks = new Map<string, NetworkSpec>();
  private readonly mac: string;
  private readonly now: () => number;
  private readonly endpoints = new Map<number, Endpoint>();
  private timer: NodeJS.Timeout | undefined;
  private restored = false;
  private reportPending = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly o: QuerierOptions) {
    this.mac = querierMac(o.node);
    this.now = o.now ?? Date.now;
  }

  /** Takes every ready endpoint (querying it at once) and follows endpoints as they come and go. */
  start(): void {
    for (const e of this.o.endpoints.endpoints()) this.addEndpoint(e);
    this.unsubscribe.push(
      this.o.endpoints.subscribe((ev) =>
        ev.type === 'ready' ? this.addEndpoint(ev.endpoint) : this.removeEndpoint(ev.endpoint),
      ),
    );
  }

  /**
   * The VirtualNetworks, with their querier settings. A network whose settings changed gets a new
   * table that restores the old one's memberships, as after a restart: no member is dropped.
   */
  setNetworks(networks: readonly NetworkSpec[]): void {
    this.networks = new Map(networks.map((n) => [n.name, n]));
    for (const [name, t] of [...this.tables]) {
      if (t.key === this.configKey(name)) continue;
      const records = t.table.records();
      t.unsubscribe();
      this.tables.delete(name);
      const fresh = this.tableFor(name);
      for (const e of this.endpoints.values())
        if (e.network === name) this.apply(fresh, fresh.table.addEndpoint(this.ref(e), this.now()));
      this.apply(fresh, fresh.table.restore(records, this.now()));
      this.o.log.info('querier settings of the network changed', { network: name, settings: fresh.key });
    }
  }

  /**
   * Restores this node's previously published memberships (from the lookup service's directory), once,
   * before anything is reported: an agent restart must not withdraw members it has not re-heard yet.
   */
  restore(records: readonly MembershipRecord[]): void {
    if (this.restored) return;
    this.restored = true;
    for (const [name, t] of this.tables) {
      this.apply(
        t,
        t.table.restore(
          records.filter((r) => r.network === name),
          this.now(),
        ),
      );
    }
    this.o.onRecords(this.records());
    this.report();
  }

  /** `frame` was parsed from `bytes` (offsets are absolute); the table reads it now, before the ring moves on. */
  handleFrame(endpointId: number, frame: ParsedFrame, bytes: Uint8Array): void {
    const e = this.endpoints.get(endpointId);
    const t = e && this.tables.get(e.network);
    if (t) this.apply(t, t.table.handleFrame(endpointId, frame, bytes, this.now()));
  }

  records(): MembershipRecord[] {
    return [...this.tables.values()].flatMap((t) => t.table.records());
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.tables.values())
      for (const [k, v] of Object.entries(t.table.counters())) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  dispose(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    for (const t of this.tables.values()) t.unsubscribe();
    if (this.timer) clearTimeout(this.timer);
  }

  private configKey(network: string): string {
    return JSON.stringify(networkMembershipConfig(this.o.config ?? {}, this.networks.get(network)));
  }

  private tableFor(network: string): NetworkTable {
    let t = this.tables.get(network);
    if (t) return t;
    const cfg = networkMembershipConfig(this.o.config ?? {}, this.networks.get(network));
    const table = new MembershipTable(this.o.node, cfg);
    const unsubscribe = table.onChange(() => {
      this.o.onRecords(this.records());
      this.report();
    });
    t = {
      table,
      key: JSON.stringify(cfg),
      cfg: {
        robustness: cfg.robustness ?? DEFAULT_MEMBERSHIP_CONFIG.robustness,
        queryIntervalMs: cfg.queryIntervalMs ?? DEFAULT_MEMBERSHIP_CONFIG.queryIntervalMs,
      },
      unsubscribe,
    };
    this.tables.set(network, t);
    return t;
  }

  private ref(e: Endpoint) {
    return { network: e.network, endpointId: e.endpointId };
  }

  private addEndpoint(e: Endpoint): void {
    if (this.endpoints.has(e.endpointId)) return;
    this.endpoints.set(e.endpointId, e);
    const t = this.tableFor(e.network);
    this.apply(t, t.table.addEndpoint(this.ref(e), this.now()));
  }

  private removeEndpoint(e: Endpoint): void {
    if (!this.endpoints.delete(e.endpointId)) return;
    const t = this.tables.get(e.network);
    if (t) this.apply(t, t.table.removeEndpoint(e.endpointId));
  }

  private apply(t: NetworkTable, o: Outcome): void {
    for (const q of o.queries) this.sendQuery(t, q);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    let next = Infinity;
    for (const t of this.tables.values()) next = Math.min(next, t.table.nextDeadline());
    if (!Number.isFinite(next)) return;
    this.timer = setTimeout(
      () => {
        for (const t of this.tables.values()) this.apply(t, t.table.tick(this.now()));
        this.schedule();
      },
      Math.max(0, next - this.now()),
    );
    this.timer.unref();
  }

  private report(): void {
    // Until restored, the tables may not yet hold members heard before a restart: do not withdraw them.
    if (!this.restored || this.reportPending) return;
    this.reportPending = true;
    queueMicrotask(() => {
      this.reportPending = false;
      this.o.lookup.reportMemberships(this.o.node, this.records()).catch((err: Error) =>
        // The lookup client re-sends its last report when it reconnects.
        this.o.log.warn('membership report not accepted yet', { error: err.message }),
      );
    });
  }

  private sendQuery(t: NetworkTable, q: QueryRequest): void {
    const e = this.endpoints.get(q.endpointId);
    if (!e) return;
    const ips = e.ips.map(plainIp);
    const common = {
      querierMac: this.mac,
      group: q.group,
      sources: q.sources,
      maxResponseMs: q.maxResponseMs,
      robustness: t.cfg.robustness,
      queryIntervalSec: Math.round(t.cfg.queryIntervalMs / 1000),
      suppressRouterSide: q.suppressRouterSide,
    };
    try {
      const wantV4 = q.group ? !q.mld : ips.some((ip) => isIPv4(ip));
      const wantV6 = q.group ? q.mld : ips.some((ip) => isIPv6(ip));
      // The querier's IPv4 source: 0.0.0.0 is what snooping queriers use (RFC 4541 2.1.1); hosts accept it.
      if (wantV4) this.o.inject(e.endpointId, buildIgmpQuery({ ...common, querierIp: '0.0.0.0' }));
      if (wantV6)
        this.o.inject(e.endpointId, buildMldQuery({ ...common, querierIp: linkLocalFromMac(this.mac) }));
    } catch (err) {
      this.o.log.warn('cannot build query', { endpoint: e.endpointId, error: errorMessage(err) });
    }
  }
}
