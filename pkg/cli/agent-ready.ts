// `castnet agent-ready`: the agent container's readiness and liveness probe. The kubelet runs it every
// few seconds on every node, so it loads only commander and an HTTP request over the agent's socket:
// with the Kubernetes client, koffi and zod it cost 1.2 s of CPU per run, and timed out under load.
import type { Command } from 'commander';
import { probeAgent } from '../agent/cniserver/client.js';
import { DEFAULT_AGENT_SOCKET } from '../cni/types.js';

export function registerAgentReadyCommand(program: Command): void {
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
}
