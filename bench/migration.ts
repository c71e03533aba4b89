// make bench-migration: issue 10's live migration of a real guest under a stream, with castnet's
// handover and without it, in the same run. The real lab (pkg/lab), 3 nodes: a qemu guest (a
// virt-launcher pod with KubeVirt's bridge binding) on node 0 joins a group from its own kernel; a
// pod on node 1 streams to the group at BENCH_RATE msg/s with sequence numbers; the guest migrates
// to node 2 (QEMU over QMP, through a proxy per node over the underlay) and counts what it got.
//   handover: the agents move the VM's groups to the target on its first frame (QEMU's announcement)
//   rejoin:   the same with `--no-vm-group-handover`: the groups follow only the guest's own reports
// Trials alternate (BENCH_REPEATS each, the median counts). Writes bench/results/migration.json
// ({"handover": {lost, duplicates, loss_ms, qemu_downtime_ms}, "rejoin": {...}}); docs/benchmarks.md.
// Goal (handover): zero duplicates, loss_ms ≤ qemu_downtime_ms + 50.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../pkg/lab/runner.js';
import { measureLabMigration, MIGRATION_LAB, type StreamedMigration } from '../pkg/lab/migration-stream.js';
import { parseLabFile } from '../pkg/lab/scenario.js';
import { ROOT } from './dataplane-systems.js';

const RATE = Number(process.env.BENCH_RATE ?? 1000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const LEAD_MS = 2000;
const TAIL_MS = 2000;
const GOAL_MARGIN_MS = 50;

type Mode = 'handover' | 'rejoin';

async function trial(mode: Mode): Promise<StreamedMigration> {
  const lab = new Lab(parseLabFile(MIGRATION_LAB), {
    castnetBin: join(ROOT, 'bin', 'castnet'),
    cniBin: join(ROOT, 'bin', 'castnet-cni'),
    captures: false,
    ...(mode === 'rejoin' ? { agentArgs: ['--no-vm-group-handover'] } : {}),
  });
  try {
    await lab.start();
    return await measureLabMigration(lab, { rate: RATE, leadMs: LEAD_MS, tailMs: TAIL_MS });
  } finally {
    await lab.dispose();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

function summary(trials: StreamedMigration[]) {
  const byLoss = [...trials].sort((a, b) => a.loss_ms - b.loss_ms);
  const mid = byLoss[Math.floor((byLoss.length - 1) / 2)]!;
  return {
    lost: mid.lost,
    duplicates: Math.max(...trials.map((t) => t.duplicates)),
    loss_ms: mid.loss_ms,
    qemu_downtime_ms: mid.qemu_downtime_ms,
    median_qemu_downtime_ms: median(trials.map((t) => t.qemu_downtime_ms)),
    /** Per trial: the loss beyond QEMU's own downtime (the goal allows 50 ms). */
    loss_beyond_downtime_ms: trials.map((t) => t.loss_ms - t.qemu_downtime_ms),
    trials,
  };
}

async function main(): Promise<void> {
  const loadStart = loadavg();
  const trials: Record<Mode, StreamedMigration[]> = { handover: [], rejoin: [] };
  for (let i = 0; i < REPEATS; i++)
    for (const mode of ['handover', 'rejoin'] as const) {
      const t = await trial(mode);
      trials[mode].push(t);
      console.log(`${mode} #${i + 1}: ${JSON.stringify(t)}`);
    }
  const handover = summary(trials.handover);
  const rejoin = summary(trials.rejoin);
  const result = {
    bench: 'migration',
    date: new Date().toISOString(),
    rate_msg_per_s: RATE,
    repeats: REPEATS,
    accelerator: 'see the lab log (TCG unless KVM works)',
    goal: `handover: 0 duplicates and loss_ms <= qemu_downtime_ms + ${GOAL_MARGIN_MS}`,
    goal_met: handover.duplicates === 0 && handover.loss_ms <= handover.qemu_downtime_ms + GOAL_MARGIN_MS,
    goal_met_trials: `${handover.loss_beyond_downtime_ms.filter((x) => x <= GOAL_MARGIN_MS).length} of ${REPEATS}`,
    load_average_at_start: loadStart,
    load_average_at_end: loadavg(),
    handover,
    rejoin,
  };
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'migration.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(
    JSON.stringify({
      handover: { ...handover, trials: undefined },
      rejoin: { ...rejoin, trials: undefined },
    }),
  );
}

await main();
