#!/usr/bin/env node
// castnet: one program for the long-running parts (agent, controller) and the operator commands.
import { Command } from 'commander';
import { errorMessage } from '../../pkg/base/errors.js';

type Register = (p: Command) => void;

// Each command module lives in pkg/cli and is loaded only when its command runs: the Kubernetes
// client alone adds ~80 MB of resident memory, which the agent with the embedded lookup service and
// the agent-metrics sidecar must not carry. Help (or an unknown command) loads them all.
const modules: Array<{ commands: string[]; load: () => Promise<Register> }> = [
  { commands: ['agent'], load: async () => (await import('../../pkg/cli/agent.js')).registerAgentCommand },
  {
    commands: ['controller'],
    load: async () => (await import('../../pkg/cli/controller.js')).registerControllerCommand,
  },
  { commands: ['lab'], load: async () => (await import('../../pkg/cli/lab.js')).registerLabCommand },
  {
    commands: ['agent-ready'],
    load: async () => (await import('../../pkg/cli/agent-ready.js')).registerAgentReadyCommand,
  },
  {
    commands: ['install-cni', 'agent-metrics', 'uninstall-node'],
    load: async () => (await import('../../pkg/cli/node-install.js')).registerNodeInstallCommands,
  },
  {
    commands: ['claim-pool-index', 'wait-daemonset'],
    load: async () => (await import('../../pkg/cli/install.js')).registerInstallCommands,
  },
  { commands: ['health'], load: async () => (await import('../../pkg/cli/health.js')).registerHealthCommand },
];

async function main(): Promise<void> {
  const program = new Command('castnet')
    .description('Multicast and broadcast for Kubernetes pods and KubeVirt VMs over a unicast underlay')
    .version('0.1.0');
  const named = modules.filter((m) => m.commands.includes(process.argv[2] ?? ''));
  for (const m of named.length ? named : modules) (await m.load())(program);
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  console.error(`castnet: ${errorMessage(err)}`);
  process.exit(1);
});
