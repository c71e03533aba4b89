// A real `bin/castnet agent` for integration tests: it runs inside a fresh network namespace that acts
// as the node, with its socket and state in a temp dir. Requires `make build`.
import { type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { NetworkSpec } from '../../pkg/lookup/port.js';
import { spawnIn, stop } from '../../pkg/sys/exec.js';
import { castnetCni, repoRoot } from './cni.js';
import { addNetns, delNetns } from './netns.js';

export const castnetBin = path.join(repoRoot, 'bin/castnet');

export interface AgentHarnessOptions {
  /** Unique per test file: the node namespace is `${tag}n`. */
  tag: string;
  networks: NetworkSpec[];
  poolIndex?: number;
  /** More `castnet agent` flags, e.g. ['--sweep-interval', '1']. */
  args?: string[];
}

/** How an agent process ended. */
export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class TestAgent {
  private child: ChildProcess | undefined;
  private exit: Promise<AgentExit> | undefined;
  private output = '';

  private constructor(
    readonly nodeNs: string,
    readonly dir: string,
    private readonly opts: AgentHarnessOptions,
  ) {}

  get socket(): string {
    return path.join(this.dir, 'run/agent.sock');
  }

  get stateDir(): string {
    return path.join(this.dir, 'state');
  }

  /** Everything the agent wrote to stderr (JSON lines) so far. */
  get logs(): string {
    return this.output;
  }

  /** Creates the node namespace and temp dir and starts the agent. */
  static async start(opts: AgentHarnessOptions): Promise<TestAgent> {
    for (const bin of [castnetBin, castnetCni]) {
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make build\` first`);
    }
    const nodeNs = `${opts.tag}n`;
    await addNetns(nodeNs);
    const dir = await mkdtemp(path.join(tmpdir(), `${opts.tag}-`));
    await writeFile(path.join(dir, 'networks.yaml'), stringify(opts.networks));
    const agent = new TestAgent(nodeNs, dir, opts);
    await agent.restart();
    return agent;
  }

  /**
   * (Re)starts the agent process and resolves when it serves its socket. `env` is added to the
   * agent's environment, e.g. CASTNET_TEST_HOOKS=1 and CASTNET_TEST_CRASH_AT=<step> (docs/testing.md).
   */
  async restart(env: Record<string, string> = {}): Promise<void> {
    await this.kill();
    const args = [
      'agent',
      '--socket',
      this.socket,
      '--state-dir',
      this.stateDir,
      '--node-name',
      this.nodeNs,
      '--networks',
      path.join(this.dir, 'networks.yaml'),
      '--pool-index',
      String(this.opts.poolIndex ?? 0),
      ...(this.opts.args ?? []),
    ];
    const child = spawnIn(this.nodeNs, castnetBin, args, { env: { ...process.env, ...env } });
    this.child = child;
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const from = this.output.length;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`agent did not start in 20 s:\n${this.output}`)),
        20000,
      );
      child.stdout!.on('data', (c: Buffer) => (this.output += c.toString()));
      child.stderr!.on('data', (c: Buffer) => {
        this.output += c.toString();
        if (this.output.slice(from).includes('"CNI server listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agent exited with ${code} before serving:\n${this.output}`));
      });
    });
  }

  /** Resolves when the current agent process has ended, e.g. by its armed crash hook. */
  exited(): Promise<AgentExit> {
    if (!this.exit) throw new Error('the agent was never started');
    return this.exit;
  }

  /** Stops the agent (SIGTERM, then SIGKILL). */
  async kill(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    if (signal === 'SIGKILL') {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null)
        await new Promise((r) => child.once('exit', r));
    } else {
      await stop(child);
    }
  }

  /** Stops the agent and removes its namespace and temp dir. */
  async destroy(): Promise<void> {
    await this.kill();
    await delNetns(this.nodeNs);
    await rm(this.dir, { recursive: true, force: true });
  }
}
