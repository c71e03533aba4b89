// Validation of a CNI invocation's network configuration (stdin), into the NetConf the endpoint
// manager consumes. Pure: no I/O. Each failure is a CniError naming the field and the reason.
import { z } from 'zod';
import type { Attachment, NetConf } from './types.js';
import { CNI_CODE_PARAM, parseOrThrow } from './errors.js';
import { normalizeUnicastMac } from '../netaddr/mac.js';
import { formatIp, parseIp } from '../netaddr/ip.js';
import { LIMITS } from '../lookup/limits.js';
import { normalizeResult, resultSchema } from './result.js';
import {
  CniError,
  CniErrorCode,
  CURRENT_VERSION,
  DEFAULT_AGENT_SOCKET,
  PLUGIN_TYPE,
  SUPPORTED_VERSIONS,
} from './types.js';
import { errorMessage } from '../base/errors.js';

/** A MAC field: a string (code 7 otherwise) holding a unicast MAC (code 102 otherwise), normalized. */
export const macSchema = z.string().transform((text, ctx) => {
  try {
    return normalizeUnicastMac(text);
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: errorMessage(err),
      params: { [CNI_CODE_PARAM]: CniErrorCode.InvalidMac },
    });
    return z.NEVER;
  }
});

/** An IP address without prefix, in canonical form (code 7 otherwise). */
const plainIpSchema = z.string().transform((text, ctx) => {
  try {
    if (text.includes('/')) throw new Error(`${JSON.stringify(text)} must be an address without a prefix`);
    return formatIp(parseIp(text));
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/**
 * Allowed address pairs (OpenStack's name): addresses beyond its own the endpoint may use, such as a
 * VRRP virtual IP. Under `args.cni`, where Multus puts a pod's `cni-args`; only `ipAddress` for now
 * (the endpoint's own MAC is the pair's MAC), so any other key is refused rather than ignored.
 */
const allowedAddressPairsSchema = z
  .array(z.strictObject({ ipAddress: plainIpSchema }))
  .max(LIMITS.allowedAddressesPerEndpoint)
  .refine((pairs) => new Set(pairs.map((p) => p.ipAddress)).size === pairs.length, {
    message: 'must not list an address twice',
  });

// The spec's rule for network names (SPEC.md, "Network configuration").
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const netConfSchema = z.looseObject({
  cniVersion: z.string().optional(),
  cniVersions: z.array(z.string()).optional(),
  name: z.string().regex(NAME_PATTERN, {
    message: 'must start with a letter or digit and contain only letters, digits, "_", "." and "-"',
  }),
  type: z.literal(PLUGIN_TYPE),
  network: z.string().min(1).optional(),
  agentSocket: z
    .string()
    .refine((s) => s.startsWith('/'), { message: 'must be an absolute path' })
    .optional(),
  mtu: z.int().min(68).max(65535).optional(),
  ipam: z.looseObject({ type: z.string().min(1) }).optional(),
  capabilities: z.record(z.string(), z.boolean()).optional(),
  runtimeConfig: z
    .looseObject({
      mac: macSchema.optional(),
      ips: z.array(z.string()).optional(),
    })
    .optional(),
  prevResult: resultSchema.optional(),
  args: z
    .looseObject({
      cni: z.looseObject({ allowedAddressPairs: allowedAddressPairsSchema.optional() }).optional(),
    })
    .optional(),
});

/**
 * The version this invocation speaks: `cniVersion` if supported, else the highest supported entry of
 * a `cniVersions` list (CNI 1.1). Code 1 when neither names a supported version.
 */
export function resolveVersion(cniVersion: string | undefined, cniVersions: string[] | undefined): string {
  const supported = (v: string) => (SUPPORTED_VERSIONS as readonly string[]).includes(v);
  const supportedList = SUPPORTED_VERSIONS.join(', ');
  if (cniVersion !== undefined) {
    if (supported(cniVersion)) return cniVersion;
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `invalid network config: cniVersion: ${JSON.stringify(cniVersion)} is not supported (supported: ${supportedList})`,
    );
  }
  if (cniVersions !== undefined) {
    const usable = SUPPORTED_VERSIONS.filter((v) => cniVersions.includes(v));
    if (usable.length > 0) return usable[usable.length - 1];
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `invalid network config: cniVersions: none of ${JSON.stringify(cniVersions)} is supported (supported: ${supportedList})`,
    );
  }
  throw new CniError(CniErrorCode.InvalidConfig, 'invalid network config: cniVersion: is required');
}

/** Parses stdin's text into a JSON object; code 6 when it is not one. */
export function decodeStdin(stdin: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CniErrorCode.DecodeFailure,
      'stdin: network configuration is not valid JSON',
      errorMessage(err),
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniError(CniErrorCode.DecodeFailure, 'stdin: network configuration must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** The version to put in an error's `cniVersion`: the config's, when it is a supported one. */
export function errorVersion(raw: Record<string, unknown> | undefined): string {
  const v = raw?.cniVersion;
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v) ? v : CURRENT_VERSION;
}

/** Validates a decoded network configuration into castnet's NetConf. */
export function parseNetConf(raw: Record<string, unknown>): NetConf {
  const conf = parseOrThrow(netConfSchema, raw, 'network config');
  const cniVersion = resolveVersion(conf.cniVersion, conf.cniVersions);
  return {
    cniVersion,
    name: conf.name,
    type: conf.type,
    network: conf.network ?? conf.name,
    agentSocket: conf.agentSocket ?? DEFAULT_AGENT_SOCKET,
    mtu: conf.mtu,
    ipam: conf.ipam,
    runtimeConfig: conf.runtimeConfig,
    allowedAddresses: conf.args?.cni?.allowedAddressPairs?.map((p) => p.ipAddress) ?? [],
    prevResult: conf.prevResult && normalizeResult(conf.prevResult, cniVersion),
    raw,
  };
}

/** The MAC the runtime asked for: runtimeConfig.mac wins over CNI_ARGS MAC= (as in the reference bridge). */
export function requestedMac(conf: NetConf, args: Record<string, string>): string | undefined {
  return conf.runtimeConfig?.mac ?? args.MAC;
}

const attachmentList = z.array(z.looseObject({ containerID: z.string().min(1), ifname: z.string().min(1) }));

/**
 * GC's still-valid attachments (CNI 1.1 `cni.dev/valid-attachments`; libcni also sends the misspelt
 * `cni.dev/attachments` of early 1.1 drafts). Absent means none is valid, as libcni's GC without
 * arguments intends ("all network interfaces should be GC'ed").
 */
const gcSchema = z.looseObject({
  'cni.dev/valid-attachments': attachmentList.optional(),
  'cni.dev/attachments': attachmentList.optional(),
});

export function parseValidAttachments(raw: Record<string, unknown>): Attachment[] {
  const gc = parseOrThrow(gcSchema, raw, 'GC network config');
  const list = gc['cni.dev/valid-attachments'] ?? gc['cni.dev/attachments'] ?? [];
  return list.map((a) => ({ containerId: a.containerID, ifname: a.ifname }));
}
