// `castnet controller`: the lookup service on Kubernetes (docs/api.md).
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { runUntilSignal } from './lifecycle.js';
import { parseListenAddress, secondsOption } from './options.js';
import { loadKubeConfig } from '../k8s/config.js';
import { createLogger } from '../log/log.js';
import { Controller } from '../controller/controller.js';

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
      secondsOption('--node-grace', 0),
      300,
    )
    .option('--metrics-addr <host:port>', 'serve /metrics, /healthz and /readyz here', ':9402')
    .option('--lease-duration <seconds>', 'leader lease duration', secondsOption('--lease-duration', 1), 15)
    .option(
      '--renew-deadline <seconds>',
      'leader steps down after failing to renew this long',
      secondsOption('--renew-deadline', 1),
      10,
    )
    .option(
      '--retry-period <seconds>',
      'leader election retry period',
      secondsOption('--retry-period', 0.1),
      2,
    )
    .action(async (o: ControllerCliOptions) => {
      const log = createLogger('controller');
      const controller = new Controller(loadKubeConfig(o.kubeconfig), {
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
      await runUntilSignal(() => controller.dispose(), log);
    });
}
