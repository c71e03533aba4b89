// The lab's node agents: one real `castnet agent` process per node namespace, started, handed over
// (a rolling update's surge agent beside the old one), restarted, and stopped with the lab.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../base/async.js';
import type { Disposable } from '../base/lifecycle.js';
import { probeAgent } from '../agent/cniserver/client.js';
import { run, spawnIn, stop } from '../sys/exec.js';
import type { LabLookup } from './lookup.js';
import { UNDERLAY_PORT, type LabTopology } from './topology.js';

export interface AgentOptions {
  /** Path of the castnet launcher (bin/castnet). */
  castnetBin: string;
  /** Extra agent flags. */
  agentArgs?: string[];
  /** Extra flags of one node's agent, after `agentArgs`. */
  nodeAgentArgs?: Record<number, string[]>;
}

/** How long an agent may take to serve its socket and report its node. */
const READY_TIMEOUT_MS = 20000;

export class LabAgents implements Disposable {
  private readonly running = new Map<number, ChildProcess>();
  /** Agents that handed their node over to a successor: idle until the lab stops them. */
  private readonly retired: ChildProcess[] = [];
  private starts = 0;
  private readonly nodeArgs: Map<number, string[]>;

  constructor(
    private readonly topo: LabTopology,
    private readonly lookup: LabLookup,
    private readonly opts: AgentOptions,
  ) {
    this.nodeArgs = new Map(Object.entries(opts.nodeAgentArgs ?? {}).map(([i, a]) => [Number(i), a]));
  }

  private dir(index: number): string {
    return join(this.topo.dir, `node-${index}`);
  }

  /** Node `index`'s agent socket (the CNI plugin's and the tests' way in). */
  socket(index: number): string {
    return join(this.dir(index), 'agent.sock');
  }

  /** Starts node `index`'s agent and resolves once it serves its socket and reported its node. */
  async start(index: number): Promise<void> {
    const node = this.topo.nodes[index]!;
    const instance = `lab-node-${index}-${++this.starts}`;
    const dir = this.dir(index);
    mkdirSync(dir, { recursive: true });
    const logFd = openSync(join(dir, 'agent.log'), 'a');
    const name = this.lookup.nodeName(index);
    if (!this.running.has(index)) this.lookup.prepareNode(node.ns);
    const child = spawnIn(
      node.ns,
      this.opts.castnetBin,
      [
        'agent',
        '--node-name',
        name,
        '--socket',
        this.socket(index),
        '--state-dir',
        join(dir, 'state'),
        '--pool-index',
        String(index),
        ...this.lookup.agentArgs(),
        '--underlay-address',
        node.address,
        '--underlay-port',
        String(UNDERLAY_PORT),
        '--instance',
        instance,
        ...(this.opts.agentArgs ?? []),
        ...(this.nodeArgs.get(index) ?? []),
      ],
      { stdio: ['ignore', logFd, logFd] },
    );
    this.running.set(index, child);
    // This agent, not a predecessor still serving the socket (agent-ready --instance).
    const serving = () =>
      probeAgent(this.socket(index), 1000, instance).then(
        () => true,
        () => false,
      );
    const log = join(dir, 'agent.log');
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`agent on ${name} exited (${child.exitCode ?? child.signalCode}; see ${log})`);
        return (await serving()) && this.lookup.directory().nodes.some((n) => n.name === name);
      },
      {
        what: `the agent on ${name} to serve its socket and report its node (see ${log})`,
        timeoutMs: READY_TIMEOUT_MS,
        intervalMs: 10,
        failFast: true,
      },
    );
  }

  /**
   * Starts a second agent on node `index` while the first still runs, as a rolling update's surge
   * pod does, and resolves once the new one serves the node (the first handed it over).
   */
  async handOver(index: number): Promise<{ previous: ChildProcess; next: ChildProcess }> {
    const previous = this.running.get(index);
    if (!previous) throw new Error(`node ${index}: no agent is running to hand over`);
    this.retired.push(previous);
    await this.start(index);
    return { previous, next: this.running.get(index)! };
  }

  /** Stops node `index`'s agent and starts a new one on a fresh socket (with `args` as its own flags). */
  async restart(index: number, args?: string[]): Promise<void> {
    if (args) this.nodeArgs.set(index, args);
    const child = this.running.get(index);
    if (child) await stop(child);
    await run('rm', ['-f', this.socket(index)]);
    await this.start(index);
  }

  signal(index: number, signal: NodeJS.Signals): void {
    const child = this.running.get(index);
    if (!child) throw new Error(`node ${index}: no agent is running`);
    child.kill(signal);
  }

  /** The agent's /v1/stats on node `index`. */
  async stats(index: number): Promise<Record<string, unknown>> {
    const { stdout } = await run('curl', [
      '-s',
      '--unix-socket',
      join(this.dir(index), 'stats.sock'),
      'http://agent/v1/stats',
    ]);
    return JSON.parse(stdout) as Record<string, unknown>;
  }

  async dispose(): Promise<void> {
    const children = [...this.running.values(), ...this.retired];
    this.running.clear();
    this.retired.length = 0;
    for (const child of children) await stop(child);
  }
}
