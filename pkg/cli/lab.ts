// `castnet lab`: the multi-node lab on one Linux machine.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { DataplaneCounters } from '../agent/dataplane/counters.js';
import { defaultScenarioPath, parseLabFile, repoRoot } from '../lab/scenario.js';
import { Lab, type GuestReport, type ScenarioReport } from '../lab/runner.js';
import { removeLeftoverLabs } from '../lab/topology.js';

/** One agent's data-plane counters at the end of the run (its /v1/stats). */
export interface NodeCounters extends DataplaneCounters {
  node: string;
}

export interface LabRunResult {
  pass: boolean;
  scenarios: ScenarioReport[];
  nodes: NodeCounters[];
  /** The VM pods' real guests (docs/lab.md#vm-pods). */
  guests: GuestReport[];
}

export async function runLab(
  path: string,
  opts: { only?: string[]; agentArgs?: string[]; kubeconfig?: string; log?: (s: string) => void },
): Promise<LabRunResult> {
  const file = parseLabFile(readFileSync(path, 'utf8'), path);
  const root = repoRoot();
  const lab = new Lab(file, {
    castnetBin: join(root, 'bin/castnet'),
    cniBin: join(root, 'bin/castnet-cni'),
    agentArgs: opts.agentArgs,
    kubeconfig: opts.kubeconfig,
    log: opts.log,
  });
  const onSignal = () => {
    lab.dispose().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await lab.start();
    const scenarios: ScenarioReport[] = [];
    for (const s of file.scenarios) {
      if (opts.only?.length && !opts.only.includes(s.name)) continue;
      scenarios.push(await lab.runScenario(s));
    }
    const nodes: NodeCounters[] = [];
    for (const n of lab.topology.nodes) {
      const st = (await lab.agentStats(n.index).catch(() => undefined)) as
        { dataplane: DataplaneCounters } | undefined;
      if (st) nodes.push({ node: n.name, ...st.dataplane });
    }
    return { pass: scenarios.every((s) => s.pass), scenarios, nodes, guests: lab.guests() };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await lab.dispose();
  }
}

function printReport(r: LabRunResult): void {
  const guests = new Set(r.guests.map((g) => g.pod));
  for (const s of r.scenarios) {
    console.log(`${s.pass ? 'PASS' : 'FAIL'}  ${s.name}`);
    if (s.join_latency_ms.length)
      console.log(`      joins reached the lookup service in ${s.join_latency_ms.join(', ')} ms`);
    for (const m of s.messages) {
      // A guest's count is its own application's, read over its console.
      const got = Object.entries(m.received)
        .filter(([, n]) => n > 0)
        .map(([p, n]) => `${p}${guests.has(p) ? '(guest)' : ''}${n === 1 ? '' : `x${n}`}`);
      console.log(
        `      ${m.from} -> ${m.group}: ${m.messages} message(s), ${m.underlay_datagrams} underlay datagram(s) per message, ` +
          `${m.remote_member_nodes} remote member node(s); received by ${got.join(' ') || 'nobody'}`,
      );
    }
    for (const f of s.failures) console.log(`      step ${f.step}: ${f.what}`);
  }
  console.log('node      captured  local-out  dgrams-out  dgrams-in  remote-out  arp  igmp/mld  drops');
  for (const n of r.nodes) {
    const drops = Object.entries(n.drops)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    console.log(
      `${n.node.padEnd(9)} ${String(n.framesCaptured).padStart(8)} ${String(n.localDeliveries).padStart(10)} ` +
        `${String(n.datagramsSent).padStart(11)} ${String(n.datagramsReceived).padStart(10)} ` +
        `${String(n.remoteDeliveries).padStart(11)} ${String(n.arpReplies).padStart(4)} ` +
        `${String(n.membershipMessages).padStart(9)}  ${drops || '-'}`,
    );
  }
  for (const g of r.guests)
    console.log(
      `guest ${g.pod} on node-${g.node}: ${g.accelerator}, booted in ${g.boot_ms} ms, ` +
        `its own application read ${g.datagrams_read} datagram(s) (controls included)`,
    );
  console.log(r.pass ? 'lab: all scenarios passed' : 'lab: some expectations failed');
}

/** The kubeconfig file the lab and its agents use: the flag, else $KUBECONFIG, else ~/.kube/config. */
function labKubeconfig(flag?: string): string {
  const file =
    flag ?? process.env.KUBECONFIG?.split(delimiter).find(Boolean) ?? join(homedir(), '.kube/config');
  if (!existsSync(file))
    throw new Error(
      `--kubeconfig: ${file} does not exist (the lab needs a kubeconfig file for --lookup kubernetes)`,
    );
  return resolve(file);
}

export function registerLabCommand(program: Command): void {
  const lab = program.command('lab').description('multi-node lab on this machine (network namespaces)');
  lab
    .command('run')
    .argument('[scenario]', 'scenario file (YAML, see docs/lab.md)', defaultScenarioPath())
    .option('--json', 'print the report as JSON')
    .option('--only <names...>', 'run only these scenarios')
    .option('--lookup <kind>', 'lookup service: embedded or kubernetes', 'embedded')
    .option('--kubeconfig <path>', 'kubeconfig for --lookup kubernetes')
    .description('build the lab, run the scenarios and report what was delivered where')
    .action(
      async (
        scenario: string,
        o: { json?: boolean; only?: string[]; lookup: string; kubeconfig?: string },
      ) => {
        if (o.lookup !== 'embedded' && o.lookup !== 'kubernetes')
          throw new Error(`--lookup: must be embedded or kubernetes, not ${o.lookup}`);
        if (o.kubeconfig && o.lookup !== 'kubernetes')
          throw new Error('--kubeconfig: only with --lookup kubernetes');
        const result = await runLab(scenario, {
          only: o.only,
          kubeconfig: o.lookup === 'kubernetes' ? labKubeconfig(o.kubeconfig) : undefined,
          log: o.json ? undefined : (s) => console.error(`lab: ${s}`),
        });
        if (o.json) console.log(JSON.stringify(result, null, 2));
        else printReport(result);
        process.exitCode = result.pass ? 0 : 1;
      },
    );
  lab
    .command('clean')
    .description('remove the namespaces of labs whose owner is gone')
    .action(async () => {
      const removed = await removeLeftoverLabs();
      console.log(removed.length ? `removed ${removed.join(', ')}` : 'nothing to remove');
    });
}
