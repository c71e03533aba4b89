// Runs the real castnet-cni binary the way a container runtime does: CNI_* environment, the network
// configuration on stdin, the result or the spec's JSON error on stdout.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './repo.js';

/** The checkout's root, from the sources or from their compiled copy under dist/ (benchmarks). */

export { repoRoot };
export const castnetCni = path.join(repoRoot, 'bin/castnet-cni');

export interface CniOutcome {
  /** Exit status. */
  status: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON. */
  json?: Record<string, unknown>;
}

export interface CniCall {
  command: string;
  /** The network configuration: an object is serialized, a string is sent as is. */
  stdin: Record<string, unknown> | string;
  /** CNI_* variables besides CNI_COMMAND; undefined values are left out. */
  env?: Record<string, string | undefined>;
  binary?: string;
}

export function invokeCni(call: CniCall): Promise<CniOutcome> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: call.command,
  };
  for (const [k, v] of Object.entries(call.env ?? {})) if (v !== undefined) env[k] = v;
  const input = typeof call.stdin === 'string' ? call.stdin : JSON.stringify(call.stdin);
  return new Promise((resolve, reject) => {
    const child = spawn(call.binary ?? castnetCni, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    // A plugin may stop reading stdin early (oversized input): that is not the test's failure.
    child.stdin.on('error', () => undefined);
    child.on('close', (status) => {
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ status: status ?? -1, stdout, stderr, json });
    });
    child.stdin.end(input);
  });
}
