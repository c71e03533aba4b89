// CNI results across spec versions: parsing a prevResult of any supported version into castnet's
// internal (1.1) form, and rendering an internal result in the version the runtime asked for.
import { z } from 'zod';
import type { CniInterface, CniIpConfig, CniResult, CniRoute } from './types.js';

const interfaceSchema = z.looseObject({
  name: z.string().min(1),
  mac: z.string().optional(),
  mtu: z.int().optional(),
  sandbox: z.string().optional(),
  socketPath: z.string().optional(),
  pciID: z.string().optional(),
});

const ipSchema = z.looseObject({
  address: z.string().min(1),
  gateway: z.string().optional(),
  interface: z.int().min(0).optional(),
  /** 0.3.x/0.4.0 only. */
  version: z.enum(['4', '6']).optional(),
});

const routeSchema = z.looseObject({
  dst: z.string().min(1),
  gw: z.string().optional(),
  mtu: z.int().optional(),
  advmss: z.int().optional(),
  priority: z.int().optional(),
  table: z.int().optional(),
  scope: z.int().optional(),
});

const dnsSchema = z.looseObject({
  nameservers: z.array(z.string()).optional(),
  domain: z.string().optional(),
  search: z.array(z.string()).optional(),
  options: z.array(z.string()).optional(),
});

/** A result as found in `prevResult`, in any supported version. */
export const resultSchema = z.looseObject({
  cniVersion: z.string().optional(),
  interfaces: z.array(interfaceSchema).optional(),
  ips: z.array(ipSchema).optional(),
  routes: z.array(routeSchema).optional(),
  dns: dnsSchema.optional(),
});

/** The internal form of a parsed result: 1.1 field set, `cniVersion` set to the invocation's. */
export function normalizeResult(result: z.output<typeof resultSchema>, cniVersion: string): CniResult {
  const out: CniResult = { cniVersion };
  if (result.interfaces) out.interfaces = result.interfaces.map((i) => pick(i, INTERFACE_FIELDS['1.1.0']));
  if (result.ips) out.ips = result.ips.map((ip) => pick(ip, IP_FIELDS));
  if (result.routes) out.routes = result.routes.map((r) => pick(r, ROUTE_FIELDS['1.1.0']));
  if (result.dns) out.dns = result.dns;
  return out;
}

const IP_FIELDS = ['address', 'gateway', 'interface'] as const;
// Fields each version's result defines; 1.1.0 added interface mtu/socketPath/pciID and route attributes.
const INTERFACE_FIELDS = {
  '0.4.0': ['name', 'mac', 'sandbox'],
  '1.0.0': ['name', 'mac', 'sandbox'],
  '1.1.0': ['name', 'mac', 'mtu', 'sandbox', 'socketPath', 'pciID'],
} as const;
const ROUTE_FIELDS = {
  '0.4.0': ['dst', 'gw'],
  '1.0.0': ['dst', 'gw'],
  '1.1.0': ['dst', 'gw', 'mtu', 'advmss', 'priority', 'table', 'scope'],
} as const;

type ResultVersion = keyof typeof INTERFACE_FIELDS;

/**
 * An internal result rendered as `cniVersion` defines it: 0.4.0 adds each IP's `version`, and fields a
 * version does not define are dropped.
 */
export function formatResult(result: CniResult, cniVersion: string): Record<string, unknown> {
  const v: ResultVersion = cniVersion in INTERFACE_FIELDS ? (cniVersion as ResultVersion) : '1.1.0';
  const out: Record<string, unknown> = { cniVersion };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i: CniInterface) => pick(i, INTERFACE_FIELDS[v]));
  }
  if (result.ips) {
    out.ips = result.ips.map((ip: CniIpConfig) => {
      const rendered: Record<string, unknown> = pick(ip, IP_FIELDS);
      return v === '0.4.0' ? { version: ipVersion(ip.address), ...rendered } : rendered;
    });
  }
  if (result.routes) out.routes = result.routes.map((r: CniRoute) => pick(r, ROUTE_FIELDS[v]));
  if (result.dns) out.dns = result.dns;
  return out;
}

function ipVersion(cidr: string): '4' | '6' {
  return cidr.includes(':') ? '6' : '4';
}

/** The listed fields of `obj` that are set, in the listed order. */
function pick<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}
