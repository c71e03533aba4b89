// End to end on a real apiserver: `castnet lab run --lookup kubernetes` plays the lab's default suite
// with the networks and groups as VirtualNetworks and MulticastGroups, agents on the Kubernetes
// lookup adapter, and the real `castnet controller` running beside them (it resolves the groups'
// status; the data plane resolves from the reports). A private cluster, so this controller resolves
// no other test's groups. Needs `make build` (make test does it).
import { jest } from '@jest/globals';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { stop } from '../../pkg/sys/exec.js';
import { ensureCluster, stopCluster, type Cluster } from '../harness/k8s.js';
import { installCrds, installVmiCrd } from './fixtures.js';
import { sleep } from '../../pkg/base/async.js';

jest.setTimeout(420_000);

const root = join(import.meta.dirname, '../..');

interface Report {
  pass: boolean;
  scenarios: {
    name: string;
    failures: { step: number; what: string }[];
    join_latency_ms: number[];
    messages: { underlay_datagrams: number; remote_member_nodes: number; received: Record<string, number> }[];
  }[];
}

interface GroupList {
  items: {
    metadata: { name: string; namespace: string };
    status?: { counts?: { members: number; static: number }; members?: { via: string }[] };
  }[];
}

let cluster: Cluster;
let controller: ChildProcess | undefined;
let controllerLog = '';

function runLab(kubeconfig: string): Promise<{ code: number; report: Report; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      join(root, 'bin/castnet'),
      ['lab', 'run', '--json', '--lookup', 'kubernetes', '--kubeconfig', kubeconfig],
      { timeout: 300_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        try {
          const code = err ? ((err as { code?: number }).code ?? 1) : 0;
          resolve({ code, report: JSON.parse(stdout) as Report, stderr });
        } catch {
          reject(new Error(`castnet lab run printed no report: ${stderr}\n${stdout}`));
        }
      },
    );
  });
}

beforeAll(async () => {
  cluster = await ensureCluster({ name: `cnlabk${process.pid}` });
  await installCrds(cluster);
  // The lab writes its VMs' VMIs (their status names the virt-launcher pods the agents may trust).
  await installVmiCrd(cluster);
  await cluster.kubectl(['create', 'namespace', 'castnet-system']);
  controller = spawn(
    join(root, 'bin/castnet'),
    ['controller', '--kubeconfig', cluster.kubeconfigPath, '--metrics-addr', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  controller.stdout!.on('data', (c: Buffer) => (controllerLog += c.toString()));
  controller.stderr!.on('data', (c: Buffer) => (controllerLog += c.toString()));
});

afterAll(async () => {
  if (controller) await stop(controller);
  if (cluster) await stopCluster(cluster);
});

test('the default lab suite passes with the Kubernetes lookup service and the controller running', async () => {
  // While the lab runs, watch what the controller writes into the lab's groups' status.
  let maxMembers = 0;
  let vias = new Set<string>();
  let polling = true;
  const poll = (async () => {
    while (polling) {
      try {
        const list = JSON.parse(
          await cluster.kubectl(['get', 'mcg', '-A', '-l', 'castnet.io/lab', '-o', 'json']),
        ) as GroupList;
        for (const g of list.items) {
          maxMembers = Math.max(maxMembers, g.status?.counts?.members ?? 0);
          vias = new Set([...vias, ...(g.status?.members ?? []).map((m) => m.via)]);
        }
      } catch {
        /* the lab has not created its groups yet, or has removed them */
      }
      await sleep(500);
    }
  })();
  const result = await runLab(cluster.kubeconfigPath);
  polling = false;
  await poll;

  const failures = result.report.scenarios.flatMap((s) =>
    s.failures.map((f) => `${s.name} step ${f.step}: ${f.what}`),
  );
  expect(failures).toEqual([]);
  expect(result.report.pass).toBe(true);
  expect(result.code).toBe(0);
  const messages = result.report.scenarios.flatMap((s) => s.messages);
  expect(messages.length).toBeGreaterThanOrEqual(9);
  for (const m of messages) expect(m.underlay_datagrams).toBe(m.remote_member_nodes);
  const asm = result.report.scenarios.find((s) => s.name === 'asm')!;
  for (const pod of ['a2', 'b1', 'b2', 'c1']) expect(asm.messages[0]!.received[pod]).toBe(1);
  for (const pod of ['a1', 'c2', 'd1', 'r0', 'r1', 'r2']) expect(asm.messages[0]!.received[pod]).toBe(0);

  // The controller resolved the lab's declared group "ops" (a static pod and the joiners of
  // 239.1.1.1, nested) from the agents' reports.
  expect(controller!.exitCode).toBeNull();
  expect(maxMembers).toBeGreaterThanOrEqual(2);
  expect([...vias]).toEqual(expect.arrayContaining(['static', 'nested']));

  // The lab removed what it created (namespaces stay Terminating: no namespace controller here).
  const left = await cluster.kubectl(['get', 'vnet,mrep,mcg', '-A', '-o', 'name']);
  expect(left.trim()).toBe('');
  expect((await cluster.kubectl(['get', 'pods', '-A', '-o', 'name'])).trim()).toBe('');
});
