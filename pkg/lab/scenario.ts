// The lab's scenario file: topology (nodes, networks, pods, groups) and scenarios of steps
// (joins, leaves, sends, expectations). Documented in docs/lab.md.
import path from 'node:path';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { describeZodError, networkSpec } from '../lookup/schema.js';

const name = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/, 'must be a short DNS-1123 label');
const ip = z.string().refine((s) => isIP(s) !== 0, 'must be an IPv4 or IPv6 address');

/** The port of the lab's positive controls (a unicast to each pod after every send's messages). */
export const CONTROL_PORT = 4999;
const port = z
  .number()
  .int()
  .min(1)
  .max(65535)
  .refine((p) => p !== CONTROL_PORT, `${CONTROL_PORT} is the lab's control port`)
  .default(5000);

const labNetwork = networkSpec.extend({
  mtu: networkSpec.shape.mtu.default(1400),
  multicast: z.boolean().default(true),
  broadcast: z.boolean().default(true),
});

const pod = z.strictObject({
  name,
  node: z.number().int().min(0),
  network: name,
  /** Emulates a KubeVirt virt-launcher pod of this VMI (labels and annotations). */
  vmi: name.optional(),
});

const group = z.strictObject({
  name,
  network: name,
  address: ip,
  /** Pod names, endpoint addresses or other group addresses. */
  staticMembers: z.array(z.string()).max(1024).default([]),
  nestedGroups: z.array(name).max(64).default([]),
  allowedSources: z.array(ip).max(64).default([]),
  /** Only these may send to the group: pod names, IPs or CIDRs (empty: anyone). */
  allowedSenders: z.array(z.string()).max(64).default([]),
});

const join = z.strictObject({
  pod: name,
  group: ip,
  /** Source-specific join (IGMPv3 INCLUDE / MLDv2): only these sources. */
  sources: z.array(z.string()).max(8).optional(),
  port,
  /** The application that joins: socat (ASM) and ssmping's mcfirst (SSM) by default, or iperf2. */
  app: z.enum(['socat', 'mcfirst', 'iperf']).optional(),
});

const send = z.strictObject({
  from: name,
  /** A group, a broadcast address or a unicast address. */
  to: ip,
  port,
  ttl: z.number().int().min(1).max(255).default(1),
  count: z.number().int().min(1).max(10000).default(1),
  /** UDP payload bytes (the token, padded); large ones test the MTU handling. */
  size: z.number().int().min(64).max(9000).optional(),
  /**
   * The sender's socket keeps a copy of its own multicast (IP_MULTICAST_LOOP): its application
   * (which must have joined) then reads exactly one copy of each message. Broadcasts always loop
   * back on Linux.
   */
  loopback: z.boolean().default(false),
});

const expectation = z.strictObject({
  /**
   * Pod name -> how many copies of each message of the preceding send its receiving application
   * must read, exactly. Every pod not named here (the sender and the other tenants included) must
   * receive nothing, not even a frame on its interface.
   */
  received: z.record(name, z.number().int().min(0)).default({}),
  /**
   * Pods that get the frames without having joined (static members of a declared group, whose
   * kernel then drops them before any application): copies of each message their interface must
   * see, exactly.
   */
  frames: z.record(name, z.number().int().min(0)).default({}),
  /** How many underlay datagrams the preceding send may cause per message (exact). */
  underlayDatagrams: z.number().int().min(0).optional(),
});

const step = z.union([
  z.strictObject({ join }),
  z.strictObject({ leave: join.pick({ pod: true, group: true }) }),
  z.strictObject({ send }),
  z.strictObject({ expect: expectation }),
  z.strictObject({ restartAgent: z.strictObject({ node: z.number().int().min(0) }) }),
  /**
   * KubeVirt live migration of a VMI pod: a target virt-launcher pod `as` on `toNode` (same VMI, with
   * KubeVirt's migration label), then the VM announces itself from there (a gratuitous ARP, like
   * QEMU's announce-self), and its joins continue there.
   */
  z.strictObject({ migrate: z.strictObject({ pod: name, toNode: z.number().int().min(0), as: name }) }),
  /** Deletes a pod (CNI DEL, namespace removed), e.g. the source pod after a migration. */
  z.strictObject({ removePod: z.strictObject({ pod: name }) }),
  /** Unicast reachability (ICMP echo) from one pod to another, IPv4 or IPv6. */
  z.strictObject({ ping: z.strictObject({ from: name, to: name, family: z.enum(['4', '6']).default('4') }) }),
  z.strictObject({ sleep: z.number().int().min(0).max(60000) }),
]);

const scenario = z.strictObject({ name, description: z.string().optional(), steps: z.array(step).min(1) });

export const labFile = z
  .strictObject({
    nodes: z.number().int().min(1).max(16),
    underlayMtu: z.number().int().min(1280).max(9000).default(1500),
    networks: z.array(labNetwork).min(1).max(16),
    pods: z.array(pod).min(1).max(256),
    groups: z.array(group).max(256).default([]),
    scenarios: z.array(scenario).min(1),
  })
  .superRefine((f, ctx) => {
    const nets = new Set(f.networks.map((n) => n.name));
    const pods = new Set<string>();
    // Pods created by migrate steps may be named by later steps.
    for (const s of f.scenarios) for (const st of s.steps) if ('migrate' in st) pods.add(st.migrate.as);
    f.pods.forEach((p, i) => {
      if (p.node >= f.nodes)
        ctx.addIssue({ code: 'custom', path: ['pods', i, 'node'], message: `no node ${p.node}` });
      if (!nets.has(p.network))
        ctx.addIssue({ code: 'custom', path: ['pods', i, 'network'], message: `no network ${p.network}` });
      if (pods.has(p.name))
        ctx.addIssue({ code: 'custom', path: ['pods', i, 'name'], message: 'duplicate pod' });
      pods.add(p.name);
    });
    f.scenarios.forEach((s, si) =>
      s.steps.forEach((st, i) => {
        const path = ['scenarios', si, 'steps', i];
        const refs: string[] =
          'join' in st
            ? [st.join.pod]
            : 'leave' in st
              ? [st.leave.pod]
              : 'send' in st
                ? [st.send.from]
                : 'expect' in st
                  ? [...Object.keys(st.expect.received), ...Object.keys(st.expect.frames)]
                  : 'ping' in st
                    ? [st.ping.from, st.ping.to]
                    : 'migrate' in st
                      ? [st.migrate.pod]
                      : 'removePod' in st
                        ? [st.removePod.pod]
                        : [];
        for (const r of refs)
          if (!pods.has(r)) ctx.addIssue({ code: 'custom', path, message: `unknown pod ${r}` });
        if ('migrate' in st && st.migrate.toNode >= f.nodes)
          ctx.addIssue({ code: 'custom', path, message: `no node ${st.migrate.toNode}` });
        if ('migrate' in st && !f.pods.find((p) => p.name === st.migrate.pod)?.vmi)
          ctx.addIssue({ code: 'custom', path, message: `${st.migrate.pod} is not a VMI pod (set vmi)` });
        if ('restartAgent' in st && st.restartAgent.node >= f.nodes)
          ctx.addIssue({ code: 'custom', path, message: `no node ${st.restartAgent.node}` });
      }),
    );
  });

export type LabFile = z.infer<typeof labFile>;
export type Scenario = LabFile['scenarios'][number];
export type Step = Scenario['steps'][number];

/** Parses and validates a lab file; errors name the field and the reason. */
export function parseLabFile(text: string, source = 'lab file'): LabFile {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`${source}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  const r = labFile.safeParse(doc);
  if (!r.success) throw new Error(`${source}: ${describeZodError(r.error)}`);
  return r.data;
}

/** The repository root, whether running from dist/ (compiled) or from sources (ts-jest). */
export function repoRoot(): string {
  const here = import.meta.dirname;
  return here.includes(`${'/dist/'}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
}

export function defaultScenarioPath(): string {
  return path.join(repoRoot(), 'pkg/lab/scenarios/default.yaml');
}
