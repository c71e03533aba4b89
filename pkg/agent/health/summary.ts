// Pure decisions above the per-peer state: the node's UnderlayHealthy condition, the report the
// lookup service stores, when that report is worth writing again, and how many replies a peer may
// draw. Time is always passed in.
import { LIMITS } from '../../lookup/limits.js';
import type { UnderlayHealthReport } from '../../lookup/port.js';
import type { PeerView } from './peer-state.js';

const byNode = (a: PeerView, b: PeerView) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);

/** Peers named in the condition's message at most; the rest are counted. */
const MAX_NAMED = 20;

function names(views: PeerView[]): string {
  const shown = views.slice(0, MAX_NAMED).map((v) => v.node);
  const more = views.length - shown.length;
  return shown.join(', ') + (more > 0 ? ` and ${more} more` : '');
}

/**
 * UnderlayHealthy: False when a peer is unreachable (reason PeerUnreachable) or loses full-size
 * probes (MTUBlackHole); the message names them. Unknown while a peer is still being probed.
 */
export function underlayCondition(views: PeerView[], probeBytes: number): UnderlayHealthReport['condition'] {
  const sorted = [...views].sort(byNode);
  const down = sorted.filter((v) => v.status === 'down');
  const blackhole = sorted.filter((v) => v.status === 'mtu-blackhole');
  const parts = [
    ...(down.length ? [`unreachable: ${names(down)}`] : []),
    ...(blackhole.length ? [`${probeBytes}-byte datagrams lost (MTU black hole): ${names(blackhole)}`] : []),
  ];
  if (parts.length)
    return {
      status: 'False',
      reason: down.length ? 'PeerUnreachable' : 'MTUBlackHole',
      message: parts.join('; '),
    };
  const unknown = sorted.filter((v) => v.status === 'unknown');
  if (unknown.length)
    return { status: 'Unknown', reason: 'Probing', message: `no verdict yet for: ${names(unknown)}` };
  return {
    status: 'True',
    reason: sorted.length ? 'AllPeersReachable' : 'NoPeers',
    message: `${sorted.length} peers reachable with ${probeBytes}-byte datagrams`,
  };
}

const rank = (v: PeerView) => (v.status === 'down' || v.status === 'mtu-blackhole' ? 0 : 1);

/** The report: the condition, and the peers by name (past the CRD's limit, the bad ones kept first). */
export function healthReport(node: string, probeBytes: number, views: PeerView[]): UnderlayHealthReport {
  const kept =
    views.length <= LIMITS.healthPeers
      ? views
      : [...views].sort((a, b) => rank(a) - rank(b) || byNode(a, b)).slice(0, LIMITS.healthPeers);
  return {
    node,
    probeBytes,
    condition: underlayCondition(views, probeBytes),
    peers: [...kept].sort(byNode).map((v) => ({
      node: v.node,
      status: v.status,
      ...(v.rttMs !== undefined ? { rttMs: Math.round(v.rttMs * 100) / 100 } : {}),
      since: new Date(v.since).toISOString(),
    })),
  };
}

/** What a report's readers act on: the statuses. RTTs drift every round and do not count. */
function verdicts(r: UnderlayHealthReport): string {
  return JSON.stringify([r.condition, r.peers.map((p) => [p.node, p.status])]);
}

/**
 * Whether to write `next`: at once when a verdict changed, otherwise only once `refreshMs` passed
 * since the last write (to refresh the RTTs), so a steady cluster costs one write a minute a node.
 */
export function shouldPublish(
  last: { report: UnderlayHealthReport; at: number } | undefined,
  next: UnderlayHealthReport,
  now: number,
  refreshMs: number,
): boolean {
  return !last || verdicts(last.report) !== verdicts(next) || now - last.at >= refreshMs;
}

/**
 * Replies each peer may draw per second: a flood of probes (replayed or spoofed from a peer's
 * address) gets at most this many small answers, and the rest are dropped and counted.
 */
export class ReplyBudget {
  private readonly windows = new Map<string, { start: number; used: number }>();

  constructor(private readonly perSecond: number) {}

  take(peer: string, now: number): boolean {
    let w = this.windows.get(peer);
    if (!w || now - w.start >= 1000) this.windows.set(peer, (w = { start: now, used: 0 }));
    if (w.used >= this.perSecond) return false;
    w.used++;
    return true;
  }

  /** Forgets peers that left the cluster. */
  retain(peers: ReadonlySet<string>): void {
    for (const p of this.windows.keys()) if (!peers.has(p)) this.windows.delete(p);
  }
}
