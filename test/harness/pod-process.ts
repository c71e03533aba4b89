// A long-running program in a pod's network namespace (a daemon, a browser, a subscriber) whose
// output a test waits on: every line of stdout and stderr is kept with the time it arrived, so a
// test can both wait for a line and measure when it came.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { errorMessage } from '../../pkg/base/errors.js';
import type { Disposable } from '../../pkg/base/lifecycle.js';
import { stop } from '../../pkg/sys/exec.js';
import { spawnWhere, type Where } from './where.js';
import { waitFor } from '../../pkg/base/async.js';

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  text: string;
  /** Date.now() when the line was read. */
  at: number;
}

export class PodProcess implements Disposable {
  readonly lines: OutputLine[] = [];
  private child?: ChildProcess;
  private exit?: string;

  /** `label` names the process in errors; the command runs in the pod `where`. */
  constructor(
    readonly label: string,
    private readonly where: Where,
    private readonly cmd: string,
    private readonly args: string[],
    private readonly opts: SpawnOptions = {},
  ) {}

  start(): void {
    const child = spawnWhere(this.where, this.cmd, this.args, this.opts);
    this.child = child;
    for (const stream of ['stdout', 'stderr'] as const)
      createInterface({ input: child[stream]! }).on('line', (text) =>
        this.lines.push({ stream, text, at: Date.now() }),
      );
    child.on('exit', (code, signal) => (this.exit = `exited (${signal ?? `status ${code}`})`));
    child.on('error', (err) => (this.exit = `failed to start: ${err.message}`));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Whether the process has exited, and how; undefined while it runs. */
  get exited(): string | undefined {
    return this.exit;
  }

  /** Closes its stdin (spawned with stdio[0] 'pipe'): end of input, for programs that wait on it. */
  closeInput(): void {
    this.child?.stdin?.end();
  }

  /** Everything it printed so far, for failure messages. */
  output(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  /**
   * The first line (from index `from` on) that matches `pattern`, with its match. Fails at once if
   * the process exited without printing it, naming its output.
   */
  async waitForLine(
    pattern: RegExp,
    what: string,
    opts: { from?: number; timeoutMs?: number } = {},
  ): Promise<{ line: OutputLine; match: RegExpExecArray }> {
    const found = await waitFor(
      () => {
        for (const line of this.lines.slice(opts.from ?? 0)) {
          const match = pattern.exec(line.text);
          if (match) return { line, match };
        }
        return this.exit ? { exited: this.exit } : undefined;
      },
      { what: `${this.label}: ${what}`, timeoutMs: opts.timeoutMs ?? 20_000, intervalMs: 10 },
    ).catch((err: unknown) => {
      // What the program said instead is the diagnosis.
      throw new Error(`${errorMessage(err)}\n${this.label} printed:\n${this.output()}`, { cause: err });
    });
    if ('exited' in found)
      throw new Error(`${this.label} ${found.exited} before ${what}; it printed:\n${this.output()}`);
    return found;
  }

  /** SIGTERM, then SIGKILL; idempotent. */
  async dispose(): Promise<void> {
    if (this.child) await stop(this.child);
  }
}
