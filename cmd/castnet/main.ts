#!/usr/bin/env node
// castnet: one program for the long-running parts (agent, controller) and the operator commands.
import { Command } from 'commander';
import { registerAgentCommand } from '../../pkg/agent/cli.js';
import { registerControllerCommand } from '../../pkg/controller/cli.js';
import { registerInstallCommands } from '../../pkg/install/cli.js';
import { registerLabCommand } from '../../pkg/lab/cli.js';

const program = new Command('castnet')
  .description('Multicast and broadcast for Kubernetes pods and KubeVirt VMs over a unicast underlay')
  .version('0.1.0');

// Each subcommand lives with its feature in pkg/ and registers itself here.
const registrations: Array<(p: Command) => void> = [
  registerAgentCommand,
  registerControllerCommand,
  registerLabCommand,
  registerInstallCommands,
];
for (const register of registrations) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`castnet: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
