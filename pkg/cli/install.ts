// The cluster-side install commands the chart runs, with the Kubernetes client: `castnet
// claim-pool-index` (the agent's init container) and `castnet wait-daemonset` (the pre-delete hook
// waits for every node's cleanup).
import { rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AppsV1Api, CoordinationV1Api } from '@kubernetes/client-node';
import { intOption } from './options.js';
import { loadKubeConfig } from '../k8s/config.js';
import { claimPoolIndex } from '../install/pool-index.js';
import { waitForDaemonSet } from '../install/wait-daemonset.js';

export function registerInstallCommands(program: Command): void {
  program
    .command('claim-pool-index')
    .description(
      "claim this node's IPAM block index (a Lease per index) and write it to a file for the agent",
    )
    .requiredOption('--namespace <ns>', 'namespace of the pool-index Leases (the release namespace)')
    .requiredOption('--node-name <name>', "this node's name")
    .requiredOption('--output <file>', 'write the index here (read by the agent container)')
    .option('--kubeconfig <file>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .action(async (o: { namespace: string; nodeName: string; output: string; kubeconfig?: string }) => {
      const leases = loadKubeConfig(o.kubeconfig).makeApiClient(CoordinationV1Api);
      const index = await claimPoolIndex(leases, o.namespace, o.nodeName);
      const tmp = `${o.output}.tmp-${process.pid}`;
      await writeFile(tmp, `${index}\n`);
      await rename(tmp, o.output);
      console.log(`node ${o.nodeName}: pool index ${index}`);
    });

  program
    .command('wait-daemonset')
    .description('wait until every pod of a DaemonSet is ready (the uninstall hook waits for node cleanup)')
    .requiredOption('--namespace <ns>', 'namespace of the DaemonSet')
    .requiredOption('--name <name>', 'the DaemonSet')
    .option('--timeout <seconds>', 'give up after', intOption('--timeout', 1, 3600), 300)
    .option('--kubeconfig <file>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .action(async (o: { namespace: string; name: string; timeout: number; kubeconfig?: string }) => {
      const apps = loadKubeConfig(o.kubeconfig).makeApiClient(AppsV1Api);
      await waitForDaemonSet(apps, o.namespace, o.name, o.timeout * 1000);
    });
}
