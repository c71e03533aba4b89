// Sequenced multicast streams between pods of the real cluster (test/cluster/tools/stream.ts run in
// each pod's network namespace), for what a socat exchange cannot show: loss and duplicates while
// something happens to castnet (a rolling upgrade, an agent killed), and join → first delivery.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { run } from '../../pkg/sys/exec.js';
import { repoRoot } from './cni.js';
import { net1Address, podSandboxPid, type PodInfo, type RealCluster } from './cluster.js';
import { sleep } from '../../pkg/base/async.js';

const toolsOut = path.join(process.env.CASTNET_CACHE ?? path.join(repoRoot, '.cache'), 'cluster-tools');
let built: Promise<void> | undefined;

/** Compiles the stream tool once per process (it runs under plain node, outside jest), as ESM. */
function buildTools(): Promise<void> {
  mkdirSync(toolsOut, { recursive: true });
  // The output may live outside the repository (CASTNET_CACHE): say its format beside it.
  writeFileSync(path.join(toolsOut, 'package.json'), '{ "type": "module" }\n');
  built ??= run(
    'npx',
    [
      ...['tsc', '--outDir', toolsOut, '--rootDir', path.join(repoRoot, 'test/cluster/tools')],
      ...['--target', 'ES2022', '--module', 'nodenext', '--strict', '--types', 'node', '--skipLibCheck'],
      '--ignoreConfig',
      path.join(repoRoot, 'test/cluster/tools/stream.ts'),
    ],
    { timeoutMs: 120_000 },
  ).then(() => undefined);
  return built;
}

class StreamProcess {
  private readonly lines: string[] = [];
  private readonly waiters: ((line: string) => void)[] = [];

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const w = this.waiters.shift();
      if (w) w(line);
      else this.lines.push(line);
    });
    child.stderr.on('data', (d: Buffer) => process.stderr.write(`stream: ${d.toString()}`));
  }

  nextLine(what: string, timeoutMs = 60_000): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`stream: no ${what} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  }

  /** Closes stdin and resolves with the process's final JSON line. */
  async finish<T>(): Promise<T> {
    this.child.stdin.end();
    let line = await this.nextLine('summary');
    while (!line.startsWith('{')) line = await this.nextLine('summary');
    await once(this.child, 'exit');
    return JSON.parse(line) as T;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

async function startIn(
  c: RealCluster,
  namespace: string,
  pod: PodInfo,
  args: string[],
): Promise<StreamProcess> {
  await buildTools();
  const pid = await podSandboxPid(c, namespace, pod);
  const child = spawn('nsenter', [
    '-t',
    String(pid),
    '-n',
    process.execPath,
    path.join(toolsOut, 'stream.js'),
    ...args,
  ]);
  return new StreamProcess(child);
}

/** The stream tool in the sender's network namespace, sending from its net1 address. */
function startSending(
  c: RealCluster,
  namespace: string,
  o: { sender: PodInfo; group: string; port: number; rate: number },
): Promise<StreamProcess> {
  return startIn(c, namespace, o.sender, [
    'send',
    net1Address(o.sender),
    o.group,
    String(o.port),
    String(o.rate),
  ]);
}

/** The stream tool in `pod`'s network namespace, joined to the group on its net1 address. */
async function startReceiving(
  c: RealCluster,
  namespace: string,
  pod: PodInfo,
  group: string,
  port: number,
): Promise<StreamProcess> {
  const r = await startIn(c, namespace, pod, ['recv', net1Address(pod), group, String(port)]);
  const line = await r.nextLine('ready').catch((err: unknown) => {
    r.kill();
    throw err;
  });
  if (line !== 'ready') {
    r.kill();
    throw new Error(`stream receiver: expected "ready", got ${JSON.stringify(line)}`);
  }
  return r;
}

export interface ReceiverSummary {
  received: number;
  duplicates: number;
  firstSeq: number;
  lastSeq: number;
  /** [fromSeq, toSeq, ms] for each run of missing messages. */
  gaps: [number, number, number][];
}

export interface StreamResult {
  sent: number;
  receivers: Record<string, ReceiverSummary & { lost: number; maxLossMs: number }>;
}

export interface Stream {
  /** Resolves when every receiver has its first message. */
  flowing: Promise<void>;
  stop(): Promise<StreamResult>;
  abort(): void;
}

/**
 * Streams `rate` msg/s from `sender` to `group:port`, received by `receivers` (each joins by IGMP).
 * Loss is counted from each receiver's first message: what a join costs is not what is measured.
 */
export async function startStream(
  c: RealCluster,
  namespace: string,
  o: { sender: PodInfo; receivers: PodInfo[]; group: string; port: number; rate: number },
): Promise<Stream> {
  const receivers = await Promise.all(
    o.receivers.map((p) => startReceiving(c, namespace, p, o.group, o.port)),
  );
  const all: StreamProcess[] = [...receivers];
  try {
    const sender = await startSending(c, namespace, o);
    all.push(sender);
    const flowing = Promise.all(receivers.map((r) => r.nextLine('first message', 120_000))).then(
      () => undefined,
    );
    return {
      flowing,
      abort: () => all.forEach((p) => p.kill()),
      stop: async () => {
        const { sent } = await sender.finish<{ sent: number }>();
        // Datagrams in flight when the sender stops are not loss.
        await sleep(500);
        const out: StreamResult = { sent, receivers: {} };
        for (const [i, r] of receivers.entries()) {
          const s = await r.finish<ReceiverSummary>();
          out.receivers[o.receivers[i]!.name] = {
            ...s,
            lost: s.lastSeq - s.firstSeq + 1 - s.received + (sent - 1 - s.lastSeq),
            maxLossMs: Math.max(0, ...s.gaps.map((g) => g[2])),
          };
        }
        return out;
      },
    };
  } catch (err) {
    all.forEach((p) => p.kill());
    throw err;
  }
}

/** A sender streaming `rate` msg/s until stopped; stop() resolves with the number sent. */
export async function startSender(
  c: RealCluster,
  namespace: string,
  o: { sender: PodInfo; group: string; port: number; rate: number },
): Promise<{ stop: () => Promise<number> }> {
  const p = await startSending(c, namespace, o);
  return { stop: async () => (await p.finish<{ sent: number }>()).sent };
}

/** Joins the group from `pod` by IGMP while a sender streams, and resolves with the milliseconds from
 * the join to the first message the application reads; then leaves (the socket closes). */
export async function joinToFirstDelivery(
  c: RealCluster,
  namespace: string,
  o: { pod: PodInfo; group: string; port: number },
): Promise<number> {
  const r = await startReceiving(c, namespace, o.pod, o.group, o.port);
  try {
    const first = await r.nextLine('first message', 60_000);
    const ms = Number(first.split(' ')[2]);
    if (!Number.isFinite(ms)) throw new Error(`stream receiver: bad first line ${JSON.stringify(first)}`);
    await r.finish();
    return ms;
  } catch (err) {
    r.kill();
    throw err;
  }
}
