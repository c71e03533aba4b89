#!/usr/bin/env node
// castnet: one program for the long-running parts (agent, controller) and the operator commands.
import { Command } from 'commander';
import { registerAgentCommand } from '../../pkg/cli/agent.js';
import { registerControllerCommand } from '../../pkg/cli/controller.js';
import { registerHealthCommand } from '../../pkg/cli/health.js';
import { registerInstallCommands } from '../../pkg/cli/install.js';
import { registerLabCommand } from '../../pkg/cli/lab.js';

const program = new Command('castnet')
  .description('Multicast and broadcast for Kubernetes pods and KubeVirt VMs over a unicast underlay')
  .version('0.1.0');

// Each subcommand lives with its feature in pkg/ and registers itself here.
const registrations: Array<(p: Command) => void> = [
  registerAgentCommand,
  registerControllerCommand,
  registerLabCommand,
  registerInstallCommands,
  registerHealthCommand,
];
for (const register of registrations) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`castnet: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
