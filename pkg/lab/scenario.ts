// The lab's scenario file: topology (nodes, networks, pods, groups) and scenarios of steps
// (joins, leaves, sends, expectations). Documented in docs/lab.md.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { describeZodError, ipAddress, networkSpec } from '../lookup/schema.js';
import { errorMessage } from '../base/errors.js';

const name = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/, 'must be a short DNS-1123 label');

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
  /** Addresses beyond its own the pod may use (CNI args.cni.allowedAddressPairs), e.g. a VRRP VIP. */
  allowedAddressPairs: z.array(ipAddress).max(16).optional(),
  /** Its Kubernetes namespace (CNI_ARGS K8S_POD_NAMESPACE); default the lab's. Embedded lookup only. */
  namespace: name.optional(),
  /**
   * A real qemu guest behind KubeVirt's bridge binding (docs/lab.md#vm-pods): it joins, sends and
   * receives from its own kernel. Memory in MiB.
   */
  vm: z.strictObject({ memory: z.number().int().min(128).max(4096).default(256) }).optional(),
});

const group = z.strictObject({
  name,
  /** Its namespace; default the lab's. Groups are created in file order (the earlier is older). */
  namespace: name.optional(),
  network: name,
  address: ipAddress,
  /** Pod names, endpoint addresses or other group addresses. */
  staticMembers: z.array(z.string()).max(1024).default([]),
  nestedGroups: z.array(name).max(64).default([]),
  allowedSources: z.array(ipAddress).max(64).default([]),
  /** Only these may send to the group: pod names, IPs or CIDRs (empty: anyone). */
  allowedSenders: z.array(z.string()).max(64).default([]),
});

const join = z.strictObject({
  pod: name,
  group: ipAddress,
  /** Source-specific join (IGMPv3 INCLUDE / MLDv2): only these sources. */
  sources: z.array(z.string()).max(8).optional(),
  port,
  /** The application that joins: socat (ASM) and ssmping's mcfirst (SSM) by default, or iperf2. */
  app: z.enum(['socat', 'mcfirst', 'iperf']).optional(),
});

const send = z.strictObject({
  from: name,
  /** A group, a broadcast address or a unicast address. */
  to: ipAddress,
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

const rawStep = z.union([
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
  /**
   * A KubeVirt VM restarted on another node: its pod `pod` is deleted, and a new virt-launcher pod
   * `as` of the same VMI starts on `toNode`; it must get the VM's addresses back.
   */
  z.strictObject({ restartVm: z.strictObject({ pod: name, toNode: z.number().int().min(0), as: name }) }),
  /** Deletes a pod (CNI DEL, namespace removed), e.g. the source pod after a migration. */
  z.strictObject({ removePod: z.strictObject({ pod: name }) }),
  /** Unicast reachability (ICMP echo) from one pod to another, IPv4 or IPv6. */
  z.strictObject({ ping: z.strictObject({ from: name, to: name, family: z.enum(['4', '6']).default('4') }) }),
  z.strictObject({ sleep: z.number().int().min(0).max(60000) }),
]);

/**
 * A step is written as a one-key object ({join: {...}}); parsing tags it with its kind, so the
 * player and the checks below switch on `kind` and the compiler sees every kind handled. (Tagging
 * the union as a whole, not each option, keeps zod's errors naming the field at fault.)
 */
function tagStep(s: z.output<typeof rawStep>) {
  if ('join' in s) return { kind: 'join' as const, ...s.join };
  if ('leave' in s) return { kind: 'leave' as const, ...s.leave };
  if ('send' in s) return { kind: 'send' as const, ...s.send };
  if ('expect' in s) return { kind: 'expect' as const, ...s.expect };
  if ('restartAgent' in s) return { kind: 'restartAgent' as const, ...s.restartAgent };
  if ('migrate' in s) return { kind: 'migrate' as const, ...s.migrate };
  if ('removePod' in s) return { kind: 'removePod' as const, ...s.removePod };
  if ('restartVm' in s) return { kind: 'restartVm' as const, ...s.restartVm };
  if ('ping' in s) return { kind: 'ping' as const, ...s.ping };
  return { kind: 'sleep' as const, ms: s.sleep };
}

const step = rawStep.transform(tagStep);

/** The pods a step names (each must exist when the file is checked). */
function podsNamed(st: Step): string[] {
  switch (st.kind) {
    case 'join':
    case 'leave':
    case 'migrate':
    case 'removePod':
    case 'restartVm':
      return [st.pod];
    case 'send':
      return [st.from];
    case 'expect':
      return [...Object.keys(st.received), ...Object.keys(st.frames)];
    case 'ping':
      return [st.from, st.to];
    case 'restartAgent':
    case 'sleep':
      return [];
  }
}

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
    // Pods created by migrate and restartVm steps may be named by later steps.
    for (const s of f.scenarios)
      for (const st of s.steps) if (st.kind === 'migrate' || st.kind === 'restartVm') pods.add(st.as);
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
        // A step that failed its own checks is left untagged; its errors are reported already.
        if ((st as Partial<Step>).kind === undefined) return;
        const path = ['scenarios', si, 'steps', i];
        for (const r of podsNamed(st))
          if (!pods.has(r)) ctx.addIssue({ code: 'custom', path, message: `unknown pod ${r}` });
        if ((st.kind === 'migrate' || st.kind === 'restartVm') && st.toNode >= f.nodes)
          ctx.addIssue({ code: 'custom', path, message: `no node ${st.toNode}` });
        const named =
          st.kind === 'migrate' || st.kind === 'join' ? f.pods.find((p) => p.name === st.pod) : undefined;
        if (st.kind === 'migrate' && !named?.vmi)
          ctx.addIssue({ code: 'custom', path, message: `${st.pod} is not a VMI pod (set vmi)` });
        if (st.kind === 'join' && named?.vm && st.app)
          ctx.addIssue({
            code: 'custom',
            path: [...path, 'join', 'app'],
            message: `${st.pod}'s guest joins with castnet-guest`,
          });
        if (st.kind === 'restartAgent' && st.node >= f.nodes)
          ctx.addIssue({ code: 'custom', path, message: `no node ${st.node}` });
      }),
    );
  });

export type LabFile = z.infer<typeof labFile>;
export type Scenario = LabFile['scenarios'][number];
/** One step of a scenario, tagged with its kind. */
export type Step = Scenario['steps'][number];
/** The step of kind `K`. */
export type StepOf<K extends Step['kind']> = Extract<Step, { kind: K }>;

/** Parses and validates a lab file; errors name the field and the reason. */
export function parseLabFile(text: string, source = 'lab file'): LabFile {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`${source}: not valid YAML: ${errorMessage(err)}`, { cause: err });
  }
  const r = labFile.safeParse(doc);
  if (!r.success) throw new Error(`${source}: ${describeZodError(r.error)}`);
  return r.data;
}

/**
 * The repository root: the nearest directory above this module with a package.json, whether it runs
 * from dist/, from sources (ts-jest) or from a benchmark's build under .cache/.
 */
export function repoRoot(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
  }
}

export function defaultScenarioPath(): string {
  return path.join(repoRoot(), 'pkg/lab/scenarios/default.yaml');
}
