// `make bench-endpoint`: ADD then DEL latency of the endpoint manager in process (no CNI binary, no
// socket: what the agent adds to each request), next to the reference bridge + host-local plugins run
// as processes for the same pods in the same run. Writes bench/results/endpoint.json.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEndpointManager } from '../pkg/endpoint/node-manager.js';
import type { NetConf } from '../pkg/endpoint/manager.js';

const PODS = Number(process.env.BENCH_PODS ?? 50);
const tag = `cnbe${process.pid}`;
const nsPath = (n: string): string => `/var/run/netns/${n}`;
const ip = (...args: string[]): void => {
  const r = spawnSync('ip', args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed`);
};

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return Math.round(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] * 100) / 100;
}

const summary = (add: number[], del: number[]) => ({
  add_p50_ms: percentile(add, 50),
  add_p95_ms: percentile(add, 95),
  del_p50_ms: percentile(del, 50),
  del_p95_ms: percentile(del, 95),
});

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function runPlugin(nodeNs: string, env: Record<string, string>, stdin: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${nsPath(nodeNs)}`, '/usr/lib/cni/bridge'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`bridge ${env.CNI_COMMAND}: ${out}`)),
    );
    child.stdin.end(stdin);
  });
}

async function main(): Promise<void> {
  const nodeNs = `${tag}n`;
  const pods = Array.from({ length: PODS }, (_, i) => `${tag}p${i}`);
  const stateDir = mkdtempSync(join(tmpdir(), `${tag}-`));
  ip('netns', 'add', nodeNs);
  try {
    const m = createEndpointManager({
      stateDir,
      nodeName: 'bench',
      poolIndex: 0,
      hostNetns: nsPath(nodeNs),
      networks: [
        { name: 'bench', id: 7, subnets: ['10.90.0.0/16'], mtu: 1500, multicast: true, broadcast: true },
      ],
    });
    const conf: NetConf = {
      cniVersion: '1.0.0',
      name: 'bench',
      type: 'castnet',
      network: 'bench',
      agentSocket: '/unused',
      raw: { cniVersion: '1.0.0', name: 'bench', type: 'castnet' },
    };
    const req = (i: number) => ({
      containerId: `c${i}`,
      ifname: 'eth0',
      netns: nsPath(pods[i]),
      conf,
      args: {},
      cniPath: '/usr/lib/cni',
    });

    const castAdd: number[] = [];
    const castDel: number[] = [];
    for (const p of pods) ip('netns', 'add', p);
    for (let i = 0; i < PODS; i++) castAdd.push(await timed(() => m.add(req(i))));
    for (let i = 0; i < PODS; i++) castDel.push(await timed(() => m.del(req(i))));
    await m.dispose();

    const refConf = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'benchref',
      type: 'bridge',
      bridge: 'cnbenchref',
      ipam: { type: 'host-local', dataDir: join(stateDir, 'hl'), ranges: [[{ subnet: '10.91.0.0/16' }]] },
    });
    const env = (cmd: string, i: number) => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: `r${i}`,
      CNI_NETNS: nsPath(pods[i]),
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
    });
    const refAdd: number[] = [];
    const refDel: number[] = [];
    for (let i = 0; i < PODS; i++) refAdd.push(await timed(() => runPlugin(nodeNs, env('ADD', i), refConf)));
    for (let i = 0; i < PODS; i++) refDel.push(await timed(() => runPlugin(nodeNs, env('DEL', i), refConf)));

    const result = {
      pods: PODS,
      castnet_manager: summary(castAdd, castDel),
      reference_bridge_host_local: summary(refAdd, refDel),
    };
    const ratio = {
      add_p50:
        Math.round(
          (result.castnet_manager.add_p50_ms / result.reference_bridge_host_local.add_p50_ms) * 100,
        ) / 100,
      del_p50:
        Math.round(
          (result.castnet_manager.del_p50_ms / result.reference_bridge_host_local.del_p50_ms) * 100,
        ) / 100,
    };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/endpoint.json', JSON.stringify({ ...result, ratio }, null, 2) + '\n');
    console.log(JSON.stringify({ ...result, ratio }, null, 2));
  } finally {
    for (const p of pods) spawnSync('ip', ['netns', 'del', p]);
    spawnSync('ip', ['netns', 'del', nodeNs]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
