// Underlay health (docs/underlay-health.md): every round, a small and a full-size probe to every
// peer agent's control port, and an answer to every authenticated probe from a known peer. This is
// control traffic, a few datagrams a second per peer, beside the data plane and never on its path:
// node:dgram through dgram-as-promised serves it well (the data plane batches with sendmmsg instead,
// docs/dataplane-io.md). The verdicts are PeerState's and summary.ts's; this file only does the I/O.
import DgramAsPromised, { type RemoteInfo, type SocketAsPromised } from 'dgram-as-promised';
import { randomInt } from 'node:crypto';
import { Counter, Gauge, Registry } from 'prom-client';
import { errorMessage } from '../../base/errors.js';
import type { Logger } from '../../log/log.js';
import type { UnderlayHealthReport } from '../../lookup/port.js';
import { formatIp, parseIp } from '../../netaddr/ip.js';
import { closeFd, openDontFragmentSocket } from '../../underlay/probe-socket.js';
import { ipFamily } from '../../netaddr/ip.js';
import { udpPayloadBudget, type WireKey } from '../../wire/index.js';
import {
  DEFAULT_THRESHOLDS,
  PeerState,
  type HealthThresholds,
  type PeerView,
  type ProbeSize,
} from './peer-state.js';
import {
  decodeProbeMessage,
  encodeProbe,
  encodeReply,
  minProbeLength,
  type ProbeErrorCode,
} from './probe.js';
import { healthReport, ReplyBudget, shouldPublish } from './summary.js';

export const DEFAULT_HEALTH_PORT = 4792;
export const DEFAULT_PROBE_INTERVAL_MS = 1000;
/** Replies one peer may draw per second: its own probes need 2 a round. */
const REPLIES_PER_PEER_PER_SECOND = 10;
/** A report with unchanged verdicts is written again after this long (fresh RTTs). */
const REFRESH_MS = 60_000;

export interface HealthPeer {
  name: string;
  address: string;
}

export interface UnderlayProberOptions {
  node: string;
  /** This node's underlay address: probes are sent from and answered on it. */
  address: string;
  /** The control port, the same on every node. */
  port: number;
  /** The configured underlay MTU: full-size probes fill it exactly. */
  underlayMtu: number;
  /** The cluster's datagram key: probes and replies carry its tag, and untagged ones are dropped. */
  key?: WireKey;
  intervalMs?: number;
  thresholds?: Partial<HealthThresholds>;
  /**
   * Called with the node's report whenever a verdict changed, and every minute anyway; one call at
   * a time (a later report waits for the earlier one's promise), so reports arrive in order.
   */
  onReport?: (report: UnderlayHealthReport) => Promise<void> | void;
  /** The clock (ms); tests pass their own. */
  now?: () => number;
  log: Logger;
}

export type HealthDropReason = ProbeErrorCode | 'unknown-peer' | 'rate-limited' | 'unexpected-reply';

export interface HealthCounters {
  probesSent: number;
  /** Probes that could not leave this node (EMSGSIZE: the local MTU is below the probe). */
  sendErrors: number;
  repliesReceived: number;
  probesAnswered: number;
  /** Datagrams dropped unanswered, by reason. */
  dropped: Partial<Record<HealthDropReason, number>>;
}

export interface HealthSnapshot {
  node: string;
  address: string;
  port: number;
  underlayMtu: number;
  /** UDP payload of the full-size probes. */
  probeBytes: number;
  intervalMs: number;
  thresholds: HealthThresholds;
  peers: Array<PeerView & { address: string }>;
  counters: HealthCounters;
}

interface Peer {
  name: string;
  address: string;
  state: PeerState;
}

/** Canonical text of an address, as both the directory and the socket may spell it differently. */
function canonical(address: string): string {
  try {
    return formatIp(parseIp(address));
  } catch {
    return address;
  }
}

export class UnderlayProber {
  readonly metrics = new Registry();
  private socket: SocketAsPromised | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** By canonical address: a datagram's source finds its peer before anything is decoded. */
  private readonly peers = new Map<string, Peer>();
  private readonly budget = new ReplyBudget(REPLIES_PER_PEER_PER_SECOND);
  private readonly thresholds: HealthThresholds;
  private readonly intervalMs: number;
  private readonly probeBytes: number;
  private readonly now: () => number;
  private seq = randomInt(0, 0xffffffff);
  private lastReport: { report: UnderlayHealthReport; at: number } | undefined;
  private delivering = false;
  /** The newest report not yet handed to onReport (older ones waiting are superseded). */
  private queued: UnderlayHealthReport | undefined;
  private disposed = false;
  private readonly c: HealthCounters = {
    probesSent: 0,
    sendErrors: 0,
    repliesReceived: 0,
    probesAnswered: 0,
    dropped: {},
  };
  private readonly drops = new Counter({
    name: 'castnet_underlay_probe_drops_total',
    help: 'Health probes and replies dropped unanswered, by reason',
    labelNames: ['reason'] as const,
    registers: [this.metrics],
  });

  constructor(private readonly o: UnderlayProberOptions) {
    this.thresholds = { ...DEFAULT_THRESHOLDS, ...o.thresholds };
    this.intervalMs = o.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.probeBytes = udpPayloadBudget(o.underlayMtu, ipFamily(o.address, 'underlay address'));
    if (this.probeBytes < minProbeLength(o.key !== undefined))
      throw new Error(`underlay MTU ${o.underlayMtu}: too small for a health probe`);
    this.now = o.now ?? Date.now;
    this.registerPeerGauges();
  }

  async start(): Promise<void> {
    const fd = openDontFragmentSocket(this.o.address, this.o.port);
    const s = DgramAsPromised.createSocket(ipFamily(this.o.address) === 4 ? 'udp4' : 'udp6');
    try {
      await s.bind({ fd });
    } catch (err) {
      closeFd(fd);
      throw new Error(`health probes on ${this.o.address}:${this.o.port}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    this.socket = s;
    // One handler per datagram: the library's recv() listens only while awaited, and a burst of
    // probes arriving in one event-loop turn would lose all but the first.
    s.socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.receive(msg, rinfo));
    s.socket.on('error', (err) => this.o.log.warn('health probe socket', { error: err.message }));
    this.timer = setInterval(() => this.round(), this.intervalMs);
    this.timer.unref();
    this.round();
  }

  /** The cluster's nodes (this one is left out): new peers are probed, gone ones forgotten. */
  setPeers(nodes: readonly HealthPeer[]): void {
    const now = this.now();
    const want = new Map<string, HealthPeer>();
    for (const n of nodes) if (n.name !== this.o.node) want.set(canonical(n.address), n);
    for (const [addr, p] of this.peers) {
      const n = want.get(addr);
      if (!n || n.name !== p.name) this.peers.delete(addr);
    }
    for (const [addr, n] of want) {
      if (this.peers.has(addr)) continue;
      // A peer of the other family cannot be reached from this socket: it is not probed.
      if (ipFamily(addr, 'peer address') !== ipFamily(this.o.address)) continue;
      this.peers.set(addr, {
        name: n.name,
        address: addr,
        state: new PeerState(n.name, this.probeBytes, this.thresholds, now),
      });
    }
    this.budget.retain(new Set([...this.peers.values()].map((p) => p.name)));
  }

  snapshot(): HealthSnapshot {
    return {
      node: this.o.node,
      address: this.o.address,
      port: this.o.port,
      underlayMtu: this.o.underlayMtu,
      probeBytes: this.probeBytes,
      intervalMs: this.intervalMs,
      thresholds: this.thresholds,
      peers: this.views()
        .map((v) => ({ ...v, address: this.peerByName(v.node)?.address ?? '' }))
        .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)),
      counters: { ...this.c, dropped: { ...this.c.dropped } },
    };
  }

  report(): UnderlayHealthReport {
    return healthReport(this.o.node, this.probeBytes, this.views());
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.timer);
    await this.socket?.close();
  }

  private views(): PeerView[] {
    return [...this.peers.values()].map((p) => p.state.view());
  }

  private peerByName(name: string): Peer | undefined {
    for (const p of this.peers.values()) if (p.name === name) return p;
    return undefined;
  }

  private round(): void {
    if (this.disposed) return;
    const now = this.now();
    for (const p of this.peers.values()) {
      p.state.expire(now);
      this.probe(p, 'small', now);
      this.probe(p, 'full', now);
    }
    this.publish(now);
  }

  private probe(p: Peer, size: ProbeSize, now: number): void {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    const bytes = size === 'small' ? minProbeLength(this.o.key !== undefined) : this.probeBytes;
    p.state.probeSent(seq, size, now);
    this.c.probesSent++;
    this.socket!.send(encodeProbe(seq, bytes, this.o.key), this.o.port, p.address).catch((err: unknown) => {
      this.c.sendErrors++;
      p.state.sendFailed(seq, errorMessage(err), this.now());
      this.publish(this.now());
    });
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.disposed) return;
    const now = this.now();
    // Strangers are dropped before any decoding: cheap, and never answered.
    const peer = this.peers.get(canonical(rinfo.address));
    if (!peer) return this.drop('unknown-peer');
    const m = decodeProbeMessage(msg, this.o.key);
    if (!m.ok) return this.drop(m.error.code);
    if (m.value.kind === 'reply') {
      if (!peer.state.replied(m.value.seq, now)) return this.drop('unexpected-reply');
      this.c.repliesReceived++;
      this.publish(now);
      return;
    }
    if (!this.budget.take(peer.name, now)) return this.drop('rate-limited');
    const reply = encodeReply(m.value, this.o.key);
    if (reply.length > msg.length) return this.drop('bad-length'); // never: a reply is the bare header
    this.c.probesAnswered++;
    this.socket!.send(reply, rinfo.port, rinfo.address).catch((err: unknown) => {
      this.c.sendErrors++;
      this.o.log.debug('health reply not sent', { peer: peer.name, error: errorMessage(err) });
    });
  }

  private drop(reason: HealthDropReason): void {
    this.c.dropped[reason] = (this.c.dropped[reason] ?? 0) + 1;
    this.drops.inc({ reason });
  }

  private publish(now: number): void {
    const report = this.report();
    if (!shouldPublish(this.lastReport, report, now, REFRESH_MS)) return;
    if (this.lastReport && this.lastReport.report.condition.status !== report.condition.status)
      this.o.log.info('underlay health changed', {
        healthy: report.condition.status,
        reason: report.condition.reason,
        message: report.condition.message,
      });
    this.lastReport = { report, at: now };
    this.deliver(report);
  }

  private deliver(report: UnderlayHealthReport): void {
    if (this.delivering) {
      this.queued = report;
      return;
    }
    this.delivering = true;
    Promise.resolve()
      .then(() => this.o.onReport?.(report))
      .catch((err: unknown) => this.o.log.warn('underlay health report failed', { error: errorMessage(err) }))
      .finally(() => {
        this.delivering = false;
        const next = this.queued;
        this.queued = undefined;
        if (next && !this.disposed) this.deliver(next);
      });
  }

  /** Per-peer gauges, read from the peers' states at scrape time. */
  private registerPeerGauges(): void {
    const views = () => this.views();
    const gauge = (name: string, help: string, value: (v: PeerView) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['peer'] as const,
        registers: [this.metrics],
        collect() {
          this.reset();
          for (const v of views()) {
            const x = value(v);
            if (x !== undefined) this.set({ peer: v.node }, x);
          }
        },
      });
    const bool = (b: boolean | undefined) => (b === undefined ? undefined : b ? 1 : 0);
    gauge('castnet_underlay_peer_reachable', '1 while small probes to the peer are answered', (v) =>
      bool(v.reachable),
    );
    gauge(
      'castnet_underlay_peer_mtu_ok',
      '1 while probes of the full underlay MTU reach the peer, 0 in an MTU black hole',
      (v) => bool(v.fullSize),
    );
    gauge('castnet_underlay_peer_rtt_seconds', 'Smoothed round-trip time of small probes', (v) =>
      v.rttMs === undefined ? undefined : v.rttMs / 1000,
    );
    new Gauge({
      name: 'castnet_underlay_peers',
      help: 'Peers by status: up, down, mtu-blackhole or unknown (not judged yet)',
      labelNames: ['status'] as const,
      registers: [this.metrics],
      collect() {
        this.reset();
        for (const status of ['up', 'down', 'mtu-blackhole', 'unknown'] as const)
          this.set({ status }, views().filter((v) => v.status === status).length);
      },
    });
    gauge(
      'castnet_underlay_peer_probes_lost',
      'Probes to the peer lost since the agent started',
      (v) => v.lost,
    );
  }
}
