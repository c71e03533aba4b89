// Runtime validation of directory records crossing a process boundary (agent reports, lab files).
import { z } from 'zod';
import { tryParseCidr, tryParseIp } from '../netaddr/ip.js';
import { LIMITS } from './limits.js';

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

// The same limits as the CRDs', so the embedded lookup service accepts what the Kubernetes one does.
export const MAX_ENDPOINTS_PER_NODE = LIMITS.endpointsPerNode;
export const MAX_MEMBERSHIPS_PER_NODE = LIMITS.membershipsPerNode;
export const MAX_SOURCES = LIMITS.sourcesPerMembership;

/** An IPv4 or IPv6 address, as pkg/netaddr parses it (no zone). */
export const ipAddress = z
  .string()
  .refine((s) => tryParseIp(s) !== undefined, 'must be an IPv4 or IPv6 address');
const cidr = z.string().refine((s) => tryParseCidr(s) !== undefined, 'must be a CIDR such as 10.0.0.0/16');
const name = z.string().regex(NAME, 'must be a DNS-1123 name');
/** A Kubernetes namespace name: a DNS-1123 label. */
const namespaceName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a namespace name (a DNS-1123 label)');
const endpointId = z.number().int().min(1).max(0xffffffff);

const rate = z
  .strictObject({
    packetsPerSecond: z.number().int().min(1).max(LIMITS.ratePpsMax),
    burst: z.number().int().min(1).max(LIMITS.ratePpsMax),
  })
  .partial()
  .optional();

export const networkSpec = z.strictObject({
  name,
  id: z.number().int().min(1).max(0xffffff),
  subnets: z.array(cidr).min(1).max(4),
  mtu: z.number().int().min(576).max(9000),
  multicast: z.boolean(),
  broadcast: z.boolean(),
  querier: z
    .strictObject({
      queryIntervalSeconds: z.number().int().min(5).max(3600).optional(),
      robustness: z.number().int().min(1).max(7).optional(),
      maxGroupsPerEndpoint: z.number().int().min(1).max(LIMITS.groupsPerEndpointMax).optional(),
    })
    .optional(),
  arpProxy: z.boolean().optional(),
  /** Namespaces that may attach and declare groups (absent: all); pkg/resolve/tenancy.ts. */
  allowedNamespaces: z
    .array(namespaceName)
    .max(LIMITS.allowedNamespaces)
    .refine((a) => new Set(a).size === a.length, 'must not repeat a namespace')
    .optional(),
  rateLimits: z.strictObject({ broadcast: rate, arp: rate, multicast: rate }).partial().optional(),
});

export const nodeRecord = z.strictObject({
  name,
  address: ipAddress,
  port: z.number().int().min(1).max(65535),
  poolIndex: z.number().int().min(0).max(65535),
  wireVersion: z.number().int().min(1).max(255).optional(),
  wireKey: z
    .strictObject({
      epoch: z.number().int().min(0).max(0xffffffff),
      publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be the base64 of 32 bytes'),
    })
    .optional(),
});

const podRef = z.strictObject({ namespace: name, name, uid: z.string().max(64).optional() });
const vmRef = z.strictObject({ namespace: name, name });

export const endpointRecord = z.strictObject({
  network: name,
  node: name,
  endpointId,
  mac: z.string().regex(MAC, 'must be a lower-case MAC such as 02:00:00:00:00:01'),
  ips: z.array(ipAddress).max(LIMITS.ipsPerEndpoint),
  pod: podRef.optional(),
  vm: vmRef.optional(),
  activatedAt: z.number().int().min(0).optional(),
  allowedAddresses: z.array(ipAddress).max(LIMITS.allowedAddressesPerEndpoint).optional(),
  claims: z
    .array(z.strictObject({ address: ipAddress, at: z.number().int().min(0) }))
    .max(LIMITS.allowedAddressesPerEndpoint)
    .optional(),
});

/** A node's request to reserve a VM's addresses (the embedded lookup's PUT /v1/reservations/...). */
export const reservationRequest = z.strictObject({
  ips: z.array(ipAddress).min(1).max(LIMITS.ipsPerEndpoint),
  owner: z
    .strictObject({ apiVersion: z.string(), kind: z.string(), name, uid: z.string().max(64) })
    .optional(),
  replace: z.boolean().optional(),
});

export const membershipRecord = z.strictObject({
  network: name,
  group: ipAddress,
  node: name,
  endpointId,
  filter: z.strictObject({
    mode: z.enum(['include', 'exclude']),
    sources: z.array(ipAddress).max(MAX_SOURCES),
  }),
  via: z.literal('selector').optional(),
});

export const groupSpec = z.strictObject({
  namespace: name,
  name,
  network: name,
  address: z
    .string()
    .refine((s) => tryParseIp(s) !== undefined || MAC.test(s), 'must be a multicast IP or MAC'),
  staticMembers: z.array(z.string()).max(1024),
  nestedGroups: z.array(name).max(64),
  allowedSources: z.array(ipAddress).max(MAX_SOURCES),
  allowedSenders: z
    .array(z.union([ipAddress, cidr], 'must be an IP address or a CIDR'))
    .max(MAX_SOURCES)
    .optional(),
  /** Creation time (ms since the epoch): the oldest group owns a contested address. */
  createdAt: z.number().int().min(0).optional(),
});

export const underlayHealthReport = z.strictObject({
  node: name,
  probeBytes: z.number().int().min(12).max(65535),
  condition: z.strictObject({
    status: z.enum(['True', 'False', 'Unknown']),
    // metav1.Condition's reason: CamelCase, no node names (those are in the message).
    reason: z
      .string()
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/, 'must be a CamelCase reason'),
    message: z.string().max(32768),
  }),
  peers: z
    .array(
      z.strictObject({
        node: name,
        status: z.enum(['unknown', 'up', 'down', 'mtu-blackhole']),
        rttMs: z.number().min(0).optional(),
        since: z.iso.datetime(),
      }),
    )
    .max(LIMITS.healthPeers),
});

export const endpointsReport = z.array(endpointRecord).max(MAX_ENDPOINTS_PER_NODE);
export const membershipsReport = z.array(membershipRecord).max(MAX_MEMBERSHIPS_PER_NODE);

/** Formats a zod error as "field.path: reason; ..." so every message names the field. */
export function describeZodError(err: z.ZodError, maxIssues = 10): string {
  const shown = err.issues
    .slice(0, maxIssues)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  const more = err.issues.length - shown.length;
  return shown.join('; ') + (more > 0 ? `; and ${more} more` : '');
}
