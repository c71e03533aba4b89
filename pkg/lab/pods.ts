// The lab's pods: a network namespace each, declared to the lookup service (virt-launcher pods with
// KubeVirt's real labels and annotations, from which the agent derives the VM identity), and its
// eth0 wired by the real castnet-cni through its node's agent, as a kubelet would. A VM pod's
// namespace is then rewired by KubeVirt's bridge binding and runs a real qemu guest (guest.ts).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Disposable } from '../base/lifecycle.js';
import { launcherPodMeta } from '../kubevirt/identity.js';
import { run } from '../sys/exec.js';
import type { VmiPods } from '../lookup/port.js';
import { bindBridge } from './bridge-binding.js';
import { Guest } from './guest.js';
import { migrateGuest, type MigrationFigures } from './migration.js';
import type { LabLookup } from './lookup.js';
import type { Topology } from './topology.js';

export interface LabPod {
  name: string;
  ns: string;
  node: number;
  /** The network's name in the lookup service. */
  network: string;
  /** The network's name in the lab file. */
  labNetwork: string;
  ip: string;
  /** Every address of the pod (the first is `ip`). */
  ips: string[];
  vmi?: string;
  mac: string;
  containerId: string;
  /** A VM pod's guest, behind its bridge binding: the pod's MAC and IPs are the guest's. */
  guest?: Guest;
  /** How long the guest took from qemu's start to its shell answering. */
  bootMs?: number;
}

/** The target node's migration proxy port (KubeVirt's virt-handler uses 49152 for its proxy too). */
const MIGRATION_PORT = 49152;

/** A lab pod that runs a real guest (the lab file's `vm`). */
export interface VmOptions {
  memory: number;
  /**
   * A live migration's target: qemu starts paused, waiting for the guest on this unix socket, and the
   * pod is watched only once the guest arrived (LabTraffic.attach with the source pod).
   */
  incoming?: string;
}

/** What watches a pod's traffic from its wiring until before its namespace goes. */
export interface PodObserver {
  /** `migratedFrom`: the pod whose guest live-migrated into `pod`, with its applications. */
  attach(pod: LabPod, migratedFrom?: LabPod): Promise<void>;
  detach(name: string): Promise<void>;
}

export interface PodOptions {
  /** Path of the CNI plugin (bin/castnet-cni). */
  cniBin: string;
  /** Node `index`'s agent socket, which the plugin calls. */
  agentSocket: (node: number) => string;
  log: (line: string) => void;
}

interface CniResult {
  ips: { address: string }[];
  interfaces: { name: string; mac: string; sandbox?: string }[];
}

export class LabPods implements Disposable {
  /** In the order they were added. */
  private readonly pods = new Map<string, LabPod>();
  /** Each VMI's status as the lab (KubeVirt's controller here) last wrote it, by VMI name. */
  private readonly vmis = new Map<string, VmiPods>();

  constructor(
    private readonly topology: Topology,
    private readonly lookup: LabLookup,
    private readonly observer: PodObserver,
    private readonly opts: PodOptions,
  ) {}

  get(name: string): LabPod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`unknown pod ${name}`);
    return p;
  }

  has(name: string): boolean {
    return this.pods.has(name);
  }

  all(): LabPod[] {
    return [...this.pods.values()];
  }

  /** A pod's address, for lab-file fields that name a pod or give an address (anything else as is). */
  addressOf(podOrAddress: string): string {
    return this.pods.get(podOrAddress)?.ip ?? podOrAddress;
  }

  /**
   * Creates pod `name` on node `node` in the lab file's network `labNetwork` (a VMI's virt-launcher
   * pod with `vmi`; a migration target with `migrationJobUid` too), wires it, and watches it. A VMI
   * pod is named in the VMI's status before its ADD, as KubeVirt does, unless `namedByVmi` is false
   * (a pod that only carries the labels).
   */
  async add(
    name: string,
    node: number,
    labNetwork: string,
    vmi?: string,
    migrationJobUid?: string,
    allowedAddressPairs: readonly string[] = [],
    /** The pod's Kubernetes namespace (CNI_ARGS K8S_POD_NAMESPACE); default the lookup's. */
    namespace?: string,
    namedByVmi = true,
    vm?: VmOptions,
  ): Promise<LabPod> {
    const network = this.lookup.networkName(labNetwork);
    const ns = await this.topology.addPodNamespace(name);
    const containerId = createHash('sha256').update(ns).digest('hex').slice(0, 32);
    const podName = vmi ? `virt-launcher-${vmi}-${containerId.slice(0, 5)}` : name;
    const podNs = namespace ?? this.lookup.namespace;
    const meta = vmi
      ? launcherPodMeta(podNs, vmi, podName, {
          vmiUid: createHash('sha256').update(vmi).digest('hex').slice(0, 36),
          migrationJobUid,
        })
      : undefined;
    const uid = await this.lookup.addPod(podName, this.lookup.nodeName(node), meta);
    if (vmi && uid && namedByVmi) {
      const prev = this.vmis.get(vmi);
      const status: VmiPods = {
        namespace: podNs,
        name: vmi,
        activePodUids: [...(prev?.activePodUids ?? []), uid],
        ...(migrationJobUid ? { migrationTargetPod: podName } : {}),
      };
      this.vmis.set(vmi, status);
      await this.lookup.setVmi(status, this.lookup.nodeName(node));
    }
    const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${podNs};K8S_POD_NAME=${podName};K8S_POD_INFRA_CONTAINER_ID=${containerId}`;
    const extra = allowedAddressPairs.length
      ? { args: { cni: { allowedAddressPairs: allowedAddressPairs.map((ipAddress) => ({ ipAddress })) } } }
      : {};
    const result = (await this.cni('ADD', { ns, containerId, network, node }, args, extra)) as CniResult;
    const ips = result.ips.map((a) => a.address.split('/')[0]!);
    const ip = ips[0]!;
    const mac = result.interfaces.find((i) => i.sandbox)?.mac ?? '';
    const pod: LabPod = { name, ns, node, network, labNetwork, ip, ips, mac, containerId, vmi };
    // Known before it is watched, so dispose() DELs it (and stops its guest) even if a later step fails.
    this.pods.set(name, pod);
    if (vm)
      await this.startGuest(
        pod,
        vm,
        result.ips.map((a) => a.address),
      );
    if (!vm?.incoming) await this.observer.attach(pod);
    const guest = pod.guest ? `, a guest booted in ${pod.bootMs} ms` : '';
    this.opts.log(`pod ${name} on node-${node} (${network}): ${ip} ${mac}${guest}`);
    return pod;
  }

  /** Rewires the pod as KubeVirt's bridge binding does and boots its guest with the pod's MAC and IPs. */
  private async startGuest(pod: LabPod, vm: VmOptions, addresses: string[]): Promise<void> {
    const { tap, mtu } = await bindBridge(pod.ns);
    const workDir = join(this.topology.layout.dir, `guest-${pod.name}`);
    pod.guest = new Guest({
      name: pod.name,
      netns: pod.ns,
      tap,
      mac: pod.mac,
      addresses,
      mtu,
      memoryMiB: vm.memory,
      workDir,
      ...(vm.incoming ? { incoming: vm.incoming } : {}),
    });
    const started = Date.now();
    await pod.guest.start();
    pod.bootMs = Date.now() - started;
  }

  /**
   * Live-migrates VM pod `src`'s guest to a new target pod `as` on node `toNode`, as KubeVirt does: the
   * target virt-launcher pod (its ADD takes over the VM's MAC and IPs) starts qemu waiting for the
   * guest, the guest moves over the nodes' network (migration.ts), and the source's qemu exits.
   */
  async migrateGuest(
    src: LabPod,
    as: string,
    toNode: number,
  ): Promise<{ dst: LabPod; figures: MigrationFigures }> {
    const source = src.guest;
    if (!source) throw new Error(`${src.name} runs no guest`);
    const dir = this.topology.layout.dir;
    const incoming = join(dir, `migration-${as}.sock`);
    const dst = await this.add(as, toNode, src.labNetwork, src.vmi, `migration-${as}`, [], undefined, true, {
      memory: source.spec.memoryMiB,
      incoming,
    });
    if (dst.mac !== src.mac || dst.ips.join() !== src.ips.join())
      throw new Error(
        `${as} did not take over ${src.name}'s endpoint: ${dst.mac} ${dst.ips} vs ${src.mac} ${src.ips}`,
      );
    const nodes = this.topology.layout.nodes;
    const figures = await migrateGuest(source, dst.guest!, {
      sourceNodeNs: nodes[src.node]!.ns,
      targetNodeNs: nodes[toNode]!.ns,
      targetNodeAddress: nodes[toNode]!.address,
      port: MIGRATION_PORT,
      sourceSocket: join(dir, `migration-from-${src.name}.sock`),
      targetSocket: incoming,
    });
    await this.observer.attach(dst, src);
    await source.dispose();
    this.opts.log(
      `guest of ${src.name} migrated to ${as} on node-${toNode}: downtime ${figures.downtimeMs} ms, total ${figures.totalMs} ms`,
    );
    return { dst, figures };
  }

  /** Deletes a pod: its traffic stops, castnet-cni DELs it, its namespace goes. */
  async remove(name: string): Promise<void> {
    const p = this.get(name);
    await this.observer.detach(name);
    await p.guest?.dispose();
    await this.cni('DEL', p, '');
    await run('ip', ['netns', 'delete', p.ns]);
    this.pods.delete(name);
  }

  private cni(
    command: 'ADD' | 'DEL',
    pod: Pick<LabPod, 'ns' | 'containerId' | 'network' | 'node'>,
    args: string,
    extra: Record<string, unknown> = {},
  ): Promise<unknown> {
    const conf = {
      ...extra,
      cniVersion: '1.1.0',
      name: pod.network,
      type: 'castnet',
      network: pod.network,
      agentSocket: this.opts.agentSocket(pod.node),
    };
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: `/run/netns/${pod.ns}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: args,
      CNI_PATH: '/usr/lib/cni',
    };
    return new Promise((resolve, reject) => {
      const child = spawn(this.opts.cniBin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.on('error', reject);
      // A plugin that exits before reading its config breaks the pipe: its exit status tells why.
      child.stdin.on('error', () => undefined);
      child.on('exit', (code) => {
        const text = Buffer.concat(out).toString('utf8');
        if (code !== 0) return reject(new Error(`castnet-cni ${command} for pod ${pod.ns} failed: ${text}`));
        resolve(text ? JSON.parse(text) : undefined);
      });
      child.stdin.end(JSON.stringify(conf));
    });
  }

  /** DELs every pod left (their namespaces go with the topology); a failed DEL is logged. */
  async dispose(): Promise<void> {
    const pods = this.all();
    this.pods.clear();
    for (const p of pods) {
      await this.observer.detach(p.name);
      await p.guest?.dispose().catch((err: Error) => this.opts.log(`guest of ${p.name}: ${err.message}`));
      await this.cni('DEL', p, '').catch((err: Error) => this.opts.log(`DEL of ${p.name}: ${err.message}`));
    }
  }
}
