// Runs external programs (ip, tcpdump, socat...) for control-plane work where a spawn is cheap enough.
import { execFile, spawn, ChildProcess, SpawnOptions } from 'node:child_process';

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs `cmd args`, rejecting with the command line and its stderr when it exits non-zero. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = (stderr || err.message).trim();
          reject(new Error(`${cmd} ${args.join(' ')}: ${detail}`));
        } else resolve({ stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run(), inside network namespace `ns` (a name under /run/netns). */
export function runIn(
  ns: string,
  cmd: string,
  args: string[],
  opts?: { input?: string; timeoutMs?: number },
) {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/** Starts a long-running process inside netns `ns`; the caller stops it. */
export function spawnIn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Sends SIGTERM, then SIGKILL after `graceMs`, and resolves when the process has exited. */
export function stop(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
