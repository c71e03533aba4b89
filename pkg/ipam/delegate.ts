// Delegated IPAM: runs another CNI plugin (host-local, static, whereabouts, ...) found in CNI_PATH with
// the invocation's own stdin and environment, as containernetworking/plugins' ipam.ExecAdd does.
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { normalizeResult, resultSchema } from '../cni/result.js';
import { CniError, CniErrorCode, type CniResult } from '../cni/types.js';

export type DelegateCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';

/** Everything needed to run the delegate again later (DEL after an agent restart). */
export interface DelegateCall {
  type: string;
  /** The network configuration exactly as the runtime passed it. */
  stdin: Record<string, unknown>;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as the runtime passed it (key=value;...). */
  args: string;
  cniPath: string;
}

/** CNI_ARGS text from parsed key/value pairs. */
export const formatCniArgs = (args: Record<string, string>): string =>
  Object.entries(args)
    .map(([k, v]) => `${k}=${v}`)
    .join(';');

/** The plugin's executable: the first `type` in the CNI_PATH directories. */
export function findPlugin(type: string, cniPath: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(type)) {
    throw new CniError(CniErrorCode.InvalidConfig, `ipam.type: ${JSON.stringify(type)} is not a plugin name`);
  }
  const dirs = cniPath.split(':').filter(Boolean);
  for (const dir of dirs) {
    const file = join(dir, type);
    try {
      accessSync(file, fsConstants.X_OK);
      return file;
    } catch {
      // try the next directory
    }
  }
  throw new CniError(
    CniErrorCode.DelegateFailed,
    `ipam.type: plugin ${JSON.stringify(type)} not found in CNI_PATH ${JSON.stringify(cniPath)}`,
  );
}

const MAX_OUTPUT = 1 << 20;

/**
 * Runs the delegate for `command`. Resolves with its parsed result for ADD, undefined otherwise.
 * A failure becomes CniError 104 whose message names the plugin and keeps the delegate's `msg`.
 */
export async function execDelegate(
  command: DelegateCommand,
  call: DelegateCall,
): Promise<CniResult | undefined> {
  const file = findPlugin(call.type, call.cniPath);
  const requested = String(call.stdin.cniVersion ?? '');
  const version = chooseDelegateVersion(requested, await supportedVersions(file), command);
  // STATUS and GC exist from CNI 1.1 on: a delegate that predates them has nothing to do.
  if (version === undefined) return undefined;
  if (version !== requested) call = { ...call, stdin: { ...call.stdin, cniVersion: version } };
  const env = {
    ...process.env,
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifname,
    CNI_ARGS: call.args,
    CNI_PATH: call.cniPath,
  };
  const { code, stdout, stderr } = await run(file, JSON.stringify(call.stdin), env);
  const what = `IPAM plugin ${JSON.stringify(call.type)} ${command}`;
  if (code !== 0) {
    const err = parseJson(stdout) as { code?: unknown; msg?: unknown; details?: unknown } | undefined;
    const msg =
      typeof err?.msg === 'string' ? err.msg : stderr.trim() || stdout.trim() || `exit status ${code}`;
    const details = [
      typeof err?.code === 'number' ? `delegate code ${err.code}` : '',
      typeof err?.details === 'string' ? err.details : '',
    ]
      .filter(Boolean)
      .join(': ');
    throw new CniError(CniErrorCode.DelegateFailed, `${what} failed: ${msg}`, details);
  }
  if (command !== 'ADD') return undefined;
  const parsed = resultSchema.safeParse(parseJson(stdout));
  if (!parsed.success) {
    throw new CniError(
      CniErrorCode.DelegateFailed,
      `${what} printed no valid result: ${stdout.slice(0, 200)}`,
    );
  }
  // The runtime gets the result in the version it asked for, whatever the delegate spoke.
  return normalizeResult(parsed.data, requested);
}

const versionCache = new Map<string, Promise<string[]>>();

/** The delegate's VERSION answer (cached per executable), or [] when it gives none. */
function supportedVersions(file: string): Promise<string[]> {
  let v = versionCache.get(file);
  if (!v) {
    v = run(file, JSON.stringify({ cniVersion: '0.4.0' }), { ...process.env, CNI_COMMAND: 'VERSION' }).then(
      ({ code, stdout }) => {
        const r = parseJson(stdout) as { supportedVersions?: unknown } | undefined;
        return code === 0 && Array.isArray(r?.supportedVersions) ? r.supportedVersions.map(String) : [];
      },
    );
    versionCache.set(file, v);
  }
  return v;
}

const ORDER = ['0.4.0', '1.0.0', '1.1.0'];

/**
 * The cniVersion to speak to a delegate: the requested one when it supports it, else the highest
 * version both know (results convert back: 1.0.0 and 1.1.0 results are the same shape). STATUS and
 * GC exist only from 1.1.0: they go to a delegate that supports it, at 1.1.0, and otherwise nowhere
 * (undefined). A delegate that does not answer VERSION gets the requested version unchanged.
 */
export function chooseDelegateVersion(
  requested: string,
  supported: readonly string[],
  command: DelegateCommand,
): string | undefined {
  if (command === 'STATUS' || command === 'GC') {
    if (supported.length === 0) return requested === '1.1.0' ? requested : undefined;
    return supported.includes('1.1.0') ? '1.1.0' : undefined;
  }
  if (supported.length === 0 || supported.includes(requested)) return requested;
  const common = ORDER.filter((v) => supported.includes(v) && ORDER.indexOf(v) <= ORDER.indexOf(requested));
  return common.at(-1) ?? requested;
}

function parseJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

function run(
  file: string,
  stdin: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const collect = (into: Buffer[]) => (b: Buffer) => {
      size += b.length;
      if (size <= MAX_OUTPUT) into.push(b);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    child.on('error', (e) =>
      reject(new CniError(CniErrorCode.DelegateFailed, `cannot run IPAM plugin ${file}: ${e.message}`)),
    );
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.on('error', () => undefined); // a plugin may exit before reading stdin
    child.stdin.end(stdin);
  });
}
