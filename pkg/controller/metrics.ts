// The controller's Prometheus metrics, in their own registry so several controllers can share a process
// (tests run two replicas side by side).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();

  constructor(opts: { processMetrics?: boolean } = {}) {
    // Process and Node.js runtime metrics (RSS, heap, event-loop lag): once per process.
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  readonly leader = new Gauge({
    name: 'castnet_controller_is_leader',
    help: '1 while this replica holds the leader lease',
    registers: [this.registry],
  });
  readonly resolveSeconds = new Histogram({
    name: 'castnet_controller_resolve_duration_seconds',
    help: 'Time to resolve every group from the caches',
    buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly statusWrites = new Counter({
    name: 'castnet_controller_status_writes_total',
    help: 'Status writes by kind and result',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'castnet_controller_workqueue_depth',
    help: 'Keys waiting in the work queue',
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: 'castnet_controller_workqueue_retries_total',
    help: 'Work items retried after a failure',
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'castnet_controller_events_total',
    help: 'Kubernetes Events emitted',
    labelNames: ['type', 'reason'] as const,
    registers: [this.registry],
  });
  readonly eventsSuppressed = new Counter({
    name: 'castnet_controller_events_suppressed_total',
    help: 'Events dropped by the per-group rate limit',
    registers: [this.registry],
  });
  readonly reportsCollected = new Counter({
    name: 'castnet_controller_reports_collected_total',
    help: 'MembershipReports deleted because their node was gone longer than the grace period',
    registers: [this.registry],
  });
  readonly staleEndpoints = new Gauge({
    name: 'castnet_controller_stale_endpoints',
    help: 'Reported endpoints left out because their pod no longer exists',
    registers: [this.registry],
  });
  readonly informerRestarts = new Gauge({
    name: 'castnet_controller_informer_restarts',
    help: 'Watch restarts after errors (apiserver restarts, expired watches)',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly groupMembers = new Gauge({
    name: 'castnet_group_members',
    help: 'Resolved members of each MulticastGroup',
    labelNames: ['namespace', 'group', 'network', 'address'] as const,
    registers: [this.registry],
  });
  readonly groupNodes = new Gauge({
    name: 'castnet_group_nodes',
    help: 'Nodes hosting at least one member of each MulticastGroup',
    labelNames: ['namespace', 'group', 'network', 'address'] as const,
    registers: [this.registry],
  });
}
