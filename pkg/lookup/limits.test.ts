// The agent's limits against the CRDs the apiserver enforces: a difference means the agent accepts
// state the apiserver rejects (or drops state the apiserver would take).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { LIMITS } from './limits.js';

type Schema = { properties?: Record<string, Schema>; items?: Schema; [k: string]: unknown };

const crdSchema = (file: string): Schema => {
  const crd = parse(
    readFileSync(path.resolve(import.meta.dirname, '../../charts/castnet/crds', file), 'utf8'),
  );
  return crd.spec.versions[0].schema.openAPIV3Schema as Schema;
};

/** Follows a dotted path of property names; `[]` steps into an array's items. */
const at = (s: Schema, dotted: string): Schema =>
  dotted.split('.').reduce<Schema>((node, key) => {
    const next = key === '[]' ? node.items : node.properties?.[key];
    if (!next) throw new Error(`schema has no ${dotted} (stopped at ${key})`);
    return next;
  }, s);

const report = crdSchema('castnet.io_membershipreports.yaml');
const network = crdSchema('castnet.io_virtualnetworks.yaml');
const group = crdSchema('castnet.io_multicastgroups.yaml');

test.each([
  ['endpointsPerNode', report, 'spec.endpoints', 'maxItems'],
  ['ipsPerEndpoint', report, 'spec.endpoints.[].ips', 'maxItems'],
  ['allowedAddressesPerEndpoint', report, 'spec.endpoints.[].allowedAddresses', 'maxItems'],
  ['allowedAddressesPerEndpoint', report, 'spec.endpoints.[].claims', 'maxItems'],
  ['membershipsPerNode', report, 'spec.memberships', 'maxItems'],
  ['sourcesPerMembership', report, 'spec.memberships.[].filter.sources', 'maxItems'],
  ['groupsPerEndpointDefault', network, 'spec.multicast.maxGroupsPerEndpoint', 'default'],
  ['groupsPerEndpointMax', network, 'spec.multicast.maxGroupsPerEndpoint', 'maximum'],
  ['broadcastPpsDefault', network, 'spec.rateLimits.broadcast.packetsPerSecond', 'default'],
  ['broadcastBurstDefault', network, 'spec.rateLimits.broadcast.burst', 'default'],
  ['arpPpsDefault', network, 'spec.rateLimits.arp.packetsPerSecond', 'default'],
  ['arpBurstDefault', network, 'spec.rateLimits.arp.burst', 'default'],
  ['multicastPpsDefault', network, 'spec.rateLimits.multicast.packetsPerSecond', 'default'],
  ['multicastBurstDefault', network, 'spec.rateLimits.multicast.burst', 'default'],
  ...(['broadcast', 'arp', 'multicast'] as const).flatMap((k) =>
    (['packetsPerSecond', 'burst'] as const).map(
      (f) => ['ratePpsMax', network, `spec.rateLimits.${k}.${f}`, 'maximum'] as const,
    ),
  ),
  ['statusMembers', group, 'status.members', 'maxItems'],
  ['healthPeers', report, 'status.underlay.peers', 'maxItems'],
  ['allowedNamespaces', network, 'spec.allowedNamespaces', 'maxItems'],
] as const)('LIMITS.%s is the CRD’s %s', (limit, schema, field, keyword) => {
  expect(at(schema, field)[keyword]).toBe(LIMITS[limit]);
});

test('byte budgets leave room under etcd’s 1.5 MiB object limit for metadata', () => {
  for (const b of [LIMITS.reportBytes, LIMITS.statusBytes]) expect(b).toBeLessThanOrEqual(1024 * 1024);
});
