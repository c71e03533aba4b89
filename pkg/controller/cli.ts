// `castnet controller`: the lookup service on Kubernetes (docs/api.md).
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { runUntilSignal } from '../cli/lifecycle.js';
import { loadConnection } from '../k8s/kubeconfig.js';
import { createLogger } from '../log/log.js';
import { Controller } from './controller.js';

interface ControllerCliOptions {
  kubeconfig?: string;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  nodeGrace: number;
  metricsAddr: string;
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
}

const seconds =
  (flag: string, min: number) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min)
      throw new Error(`${flag}: ${JSON.stringify(value)} must be a number of seconds >= ${min}`);
    return n;
  };

/** Parses host:port for the metrics listener; an empty host means all addresses. */
export function parseListenAddress(flag: string, value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  const port = Number(value.slice(at + 1));
  if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag}: ${JSON.stringify(value)} must be host:port, e.g. :9402 or 127.0.0.1:9402`);
  }
  return { host: value.slice(0, at).replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

export function registerControllerCommand(program: Command): void {
  program
    .command('controller')
    .description('run the controller: resolve MulticastGroup members into status, collect stale memberships')
    .option('--kubeconfig <file>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option(
      '--lease-namespace <ns>',
      'namespace of the leader-election Lease',
      process.env.POD_NAMESPACE ?? 'castnet-system',
    )
    .option('--lease-name <name>', 'name of the leader-election Lease', 'castnet-controller')
    .option(
      '--identity <id>',
      'this replica in the Lease',
      process.env.POD_NAME ?? `${hostname()}-${process.pid}`,
    )
    .option(
      '--node-grace <seconds>',
      'how long a node may be NotReady or deleted before its members are dropped',
      seconds('--node-grace', 0),
      300,
    )
    .option('--metrics-addr <host:port>', 'serve /metrics, /healthz and /readyz here', ':9402')
    .option('--lease-duration <seconds>', 'leader lease duration', seconds('--lease-duration', 1), 15)
    .option(
      '--renew-deadline <seconds>',
      'leader steps down after failing to renew this long',
      seconds('--renew-deadline', 1),
      10,
    )
    .option('--retry-period <seconds>', 'leader election retry period', seconds('--retry-period', 0.1), 2)
    .action(async (o: ControllerCliOptions) => {
      const log = createLogger('controller');
      const controller = new Controller(loadConnection(o.kubeconfig), {
        identity: o.identity,
        leaseNamespace: o.leaseNamespace,
        leaseName: o.leaseName,
        nodeGraceMs: o.nodeGrace * 1000,
        metrics: parseListenAddress('--metrics-addr', o.metricsAddr),
        leaseDurationMs: o.leaseDuration * 1000,
        renewDeadlineMs: o.renewDeadline * 1000,
        retryPeriodMs: o.retryPeriod * 1000,
        log: (level, msg, fields) => log[level](msg, fields),
        processMetrics: true,
      });
      await controller.start();
      const addr = controller.metricsAddress;
      log.info('controller started', {
        identity: o.identity,
        metrics: addr ? `${addr.address}:${addr.port}` : undefined,
      });
      await runUntilSignal(
        () => controller.stop(),
        (msg, fields) => log.info(`controller ${msg}`, fields),
      );
    });
}
