// Node install/uninstall commands the chart runs: `castnet install-cni` and `castnet claim-pool-index`
// (the agent's init containers), `castnet agent-ready` (its readiness probe), `castnet agent-metrics`
// (its metrics sidecar), `castnet uninstall-node` and `castnet wait-daemonset` (the pre-delete hook
// that removes what castnet put on the nodes).
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { runUntilSignal } from './lifecycle.js';
import { intOption } from './options.js';
import { DEFAULT_AGENT_SOCKET } from '../cni/netconf.js';
import { createLogger } from '../log/log.js';
import { AppsV1Api, CoordinationV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../k8s/config.js';
import { parseListenAddress } from './options.js';
import { probeAgent } from '../agent/cniserver/client.js';
import { serveAgentMetricsWhenFree } from '../install/agent-metrics.js';
import { CNI_BINARY, installCni, removeCniFiles, type InstallMode } from '../install/cni-files.js';
import { removeCastnetLinks } from '../install/node-links.js';
import { claimPoolIndex } from '../install/pool-index.js';
import { waitForDaemonSet } from '../install/wait-daemonset.js';

/** castnet-cni next to bin/castnet: the repository's bin/ and the image's /opt/castnet/bin alike. */
const bundledCni = path.resolve(import.meta.dirname, '../../../bin', CNI_BINARY);

function modeOption(value: string): InstallMode {
  if (value !== 'primary' && value !== 'secondary')
    throw new Error(`--mode: ${JSON.stringify(value)} must be primary or secondary`);
  return value;
}

interface CniDirOptions {
  binDir: string;
  confDir: string;
  conflistName: string;
}

function cniDirOptions(cmd: Command): Command {
  return cmd
    .option('--bin-dir <dir>', 'CNI binary directory', '/opt/cni/bin')
    .option('--conf-dir <dir>', 'CNI configuration directory', '/etc/cni/net.d')
    .option('--conflist-name <file>', "castnet's conflist (primary mode)", '10-castnet.conflist');
}

export function registerInstallCommands(program: Command): void {
  cniDirOptions(
    program
      .command('install-cni')
      .description(
        'install castnet-cni into the CNI binary directory; as primary network, then the conflist',
      ),
  )
    .requiredOption(
      '--mode <mode>',
      'primary (write the conflist) or secondary (Multus: binary only)',
      modeOption,
    )
    .option('--source <file>', 'the castnet-cni binary to install', bundledCni)
    .option('--network <name>', 'primary mode: the VirtualNetwork pods attach to', 'default')
    .option('--mtu <bytes>', 'primary mode: pod interface MTU', intOption('--mtu', 576, 9000))
    .option('--agent-socket <path>', "the agent's CNI socket", DEFAULT_AGENT_SOCKET)
    .action(
      async (
        o: CniDirOptions & {
          mode: InstallMode;
          source: string;
          network: string;
          mtu?: number;
          agentSocket: string;
        },
      ) => {
        for (const file of await installCni(o)) console.log(`installed ${file}`);
      },
    );

  program
    .command('agent-ready')
    .description(
      "exit 0 when the node agent serves castnet-cni on its socket (the DaemonSet's readiness probe)",
    )
    .option('--socket <path>', "the agent's CNI socket", DEFAULT_AGENT_SOCKET)
    .option(
      '--instance <id>',
      "only the agent started with this --instance counts (a surge pod's own agent, not its predecessor)",
    )
    .action(async (o: { socket: string; instance?: string }) => {
      await probeAgent(o.socket, 3000, o.instance);
    });

  program
    .command('agent-metrics')
    .description("serve the node agent's statistics (its unix stats socket) as Prometheus metrics")
    .option(
      '--stats-socket <path>',
      "the agent's stats socket",
      path.join(path.dirname(DEFAULT_AGENT_SOCKET), 'stats.sock'),
    )
    .option('--listen <host:port>', 'serve /metrics and /healthz here', ':9403')
    .action(async (o: { statsSocket: string; listen: string }) => {
      const { host, port } = parseListenAddress('--listen', o.listen);
      // On the node's network a rolling update's new pod starts beside the old one, whose sidecar
      // holds the port until it goes: wait for it rather than crash.
      const log = createLogger('agent-metrics');
      let busyLogged = false;
      const server = serveAgentMetricsWhenFree(o.statsSocket, host, port, {
        onBusy: () => {
          if (!busyLogged) log.info('port in use (a previous pod?); retrying until free', { host, port });
          busyLogged = true;
        },
        onBound: () => log.info("serving the agent's metrics", { statsSocket: o.statsSocket, host, port }),
        onError: (err) => {
          log.error('cannot listen', { host, port, error: err.message });
          process.exit(1);
        },
      });
      await runUntilSignal(() => new Promise<void>((resolve) => server.close(() => resolve())), log);
    });

  cniDirOptions(
    program
      .command('uninstall-node')
      .description('remove what castnet put on this node: castnet-cni, its conflist, its links, its state'),
  )
    .option('--state-dir <dir>', "the agent's state directory", '/var/lib/castnet')
    .option('--socket-dir <dir>', "the agent's socket directory", path.dirname(DEFAULT_AGENT_SOCKET))
    .option('--netns <path>', 'network namespace to remove links from (default: the current one)')
    .action(async (o: CniDirOptions & { stateDir: string; socketDir: string; netns?: string }) => {
      // Files first: with the conflist gone the runtime stops sending new pods to castnet.
      for (const file of await removeCniFiles(o)) console.log(`removed ${file}`);
      for (const link of removeCastnetLinks(o.netns)) console.log(`deleted link ${link}`);
      for (const dir of [o.stateDir, o.socketDir]) {
        await rm(dir, { recursive: true, force: true });
        console.log(`removed ${dir}`);
      }
    });

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
