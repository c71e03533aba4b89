// The node-local commands the chart runs, none of which talks to Kubernetes: `castnet install-cni`
// (the agent's init container), `castnet agent-metrics` (its metrics sidecar) and `castnet
// uninstall-node` (the uninstall hook's per-node cleanup).
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { runUntilSignal } from './lifecycle.js';
import { intOption, parseListenAddress } from './options.js';
import { DEFAULT_AGENT_SOCKET } from '../cni/types.js';
import { createLogger } from '../log/log.js';
import { serveAgentMetricsWhenFree } from '../install/agent-metrics.js';
import { CNI_BINARY, installCni, removeCniFiles, type InstallMode } from '../install/cni-files.js';
import { removeCastnetLinks } from '../install/node-links.js';
import { FILTER_TABLE, removeUnderlayFilter } from '../agent/underlay/filter.js';
import { GUARD_TABLE, removeSourceGuard } from '../agent/unicast/source-guard.js';
import { EGRESS_NAT_TABLE, removeEgressNat } from '../agent/unicast/egress-nat.js';

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

export function registerNodeInstallCommands(program: Command): void {
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
      if (await removeUnderlayFilter(o.netns)) console.log(`deleted nftables table inet ${FILTER_TABLE}`);
      if (await removeSourceGuard(o.netns)) console.log(`deleted nftables table ${GUARD_TABLE}`);
      if (await removeEgressNat(o.netns)) console.log(`deleted nftables table ${EGRESS_NAT_TABLE}`);
      for (const dir of [o.stateDir, o.socketDir]) {
        await rm(dir, { recursive: true, force: true });
        console.log(`removed ${dir}`);
      }
    });
}
