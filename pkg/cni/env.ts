// Validation of a CNI invocation's environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
// CNI_ARGS, CNI_PATH). Pure: no I/O. Each failure is a CniError naming the variable and the reason.
import type { PodRef } from '../lookup/port.js';
import { normalizeUnicastMac } from '../netaddr/mac.js';
import { CniError, CniErrorCode, type CniEnv } from './types.js';
import { errorMessage } from '../base/errors.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'] as const;
export type CniCommand = (typeof COMMANDS)[number];

/** The variables each verb requires (SPEC.md, "Parameters"); DEL tolerates a missing netns. */
const REQUIRED: Record<CniCommand, ReadonlyArray<keyof CniEnv>> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  STATUS: [],
  GC: [],
  VERSION: [],
};

/** CNI_ARGS key naming the KubeVirt VMI of a pod (its namespace is K8S_POD_NAMESPACE). */
export const VM_NAME_ARG = 'CASTNET_VM_NAME';

/** Keys castnet understands in CNI_ARGS (containerd's K8S_POD_*, KubeVirt's MAC, castnet's VM name). */
export const KNOWN_ARGS = [
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
  'MAC',
  VM_NAME_ARG,
  'IgnoreUnknown',
] as const;

const CONTAINER_ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const IFNAMSIZ = 16;

export interface CniInvocation {
  command: CniCommand;
  containerId: string;
  /** Empty when not given (allowed for DEL, STATUS, GC). */
  netns: string;
  ifname: string;
  args: Record<string, string>;
  cniPath: string;
}

function envError(variable: string, reason: string, code = CniErrorCode.InvalidEnvironment): CniError {
  return new CniError(code, `${variable}: ${reason}`);
}

export function parseCommand(command: string | undefined): CniCommand {
  if (!command) throw envError('CNI_COMMAND', 'required but not set');
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw envError(
      'CNI_COMMAND',
      `unknown command ${JSON.stringify(command)} (want one of ${COMMANDS.join(', ')})`,
    );
  }
  return command as CniCommand;
}

/** Why `name` is not a valid interface name (the kernel's rules), or undefined if it is. */
export function invalidIfnameReason(name: string): string | undefined {
  if (name.length >= IFNAMSIZ) return `${JSON.stringify(name)} is longer than ${IFNAMSIZ - 1} characters`;
  if (name === '.' || name === '..') return `${JSON.stringify(name)} is not allowed`;
  if (/[/:\s]/.test(name)) return `${JSON.stringify(name)} must not contain "/", ":" or whitespace`;
  return undefined;
}

/** Validates the environment of one invocation for its verb. */
export function parseEnv(env: Partial<CniEnv>): CniInvocation {
  const command = parseCommand(env.CNI_COMMAND);
  for (const variable of REQUIRED[command]) {
    if (!env[variable]) throw envError(variable, `required for ${command} but not set`);
  }
  const containerId = env.CNI_CONTAINERID ?? '';
  if (containerId && !CONTAINER_ID_PATTERN.test(containerId)) {
    throw envError(
      'CNI_CONTAINERID',
      `${JSON.stringify(containerId)} must start with a letter or digit and contain only letters, digits, "_", "." and "-"`,
    );
  }
  const ifname = env.CNI_IFNAME ?? '';
  const badIfname = ifname ? invalidIfnameReason(ifname) : undefined;
  if (badIfname) throw envError('CNI_IFNAME', badIfname);
  const netns = env.CNI_NETNS ?? '';
  if (netns && !netns.startsWith('/'))
    throw envError('CNI_NETNS', `${JSON.stringify(netns)} must be an absolute path`);
  return {
    command,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS),
    cniPath: env.CNI_PATH ?? '',
  };
}

/**
 * CNI_ARGS ("K1=V1;K2=V2") into the known keys. Unknown keys are an error (code 2) unless
 * IgnoreUnknown is true, as the reference plugins do; MAC must be a unicast MAC (code 102).
 */
export function parseCniArgs(text: string | undefined): Record<string, string> {
  const pairs: Array<[string, string]> = [];
  for (const item of (text ?? '').split(';')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw envError('CNI_ARGS', `${JSON.stringify(item)} is not a KEY=VALUE pair`);
    pairs.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  const ignoreUnknown = pairs.some(
    ([k, v]) => k === 'IgnoreUnknown' && ['1', 'true'].includes(v.toLowerCase()),
  );
  const args: Record<string, string> = {};
  for (const [key, value] of pairs) {
    if (!(KNOWN_ARGS as readonly string[]).includes(key)) {
      if (ignoreUnknown) continue;
      throw envError(
        'CNI_ARGS',
        `unknown key ${JSON.stringify(key)} (known: ${KNOWN_ARGS.join(', ')}; add IgnoreUnknown=1 to ignore unknown keys)`,
        CniErrorCode.UnsupportedField,
      );
    }
    args[key] = value;
  }
  if (args.MAC !== undefined) {
    try {
      args.MAC = normalizeUnicastMac(args.MAC);
    } catch (err) {
      throw envError('CNI_ARGS', `MAC: ${errorMessage(err)}`, CniErrorCode.InvalidMac);
    }
  }
  return args;
}

/** The pod named by containerd's K8S_POD_* arguments, when both namespace and name are present. */
export function podFromArgs(args: Record<string, string>): PodRef | undefined {
  const { K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name, K8S_POD_UID: uid } = args;
  if (!namespace || !name) return undefined;
  return uid ? { namespace, name, uid } : { namespace, name };
}
