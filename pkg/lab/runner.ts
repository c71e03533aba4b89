// Runs a lab: builds the nodes, starts the embedded lookup service and one real `castnet agent`
// per node, wires pods with the real castnet-cni, then plays each scenario with real applications
// (socat joins and sends, so the kernel speaks real IGMP/MLD). A receiving application in every pod
// (sink.ts) counts what each pod's kernel delivered; tcpdump on every pod and on the underlay shows
// what crossed each interface. Verdicts: verdict.ts, after positive controls (controls.ts).
import { ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, openSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { DirectoryStore } from '../lookup/store.js';
import { launcherPodMeta } from '../kubevirt/identity.js';
import { applyVmHandoff } from '../resolve/vm-handoff.js';
import { EmbeddedLookupServer } from '../lookup/embedded/server.js';
import { KubernetesLabDirectory } from './kubernetes.js';
import type { GroupSpec, NetworkSpec } from '../lookup/port.js';
import { run, spawnIn, stop } from '../sys/exec.js';
import { parseCidr, subnetBroadcast } from '../frame/addr.js';
import { countContaining, readPcap } from './pcap.js';
import { planControls, type Control } from './controls.js';
import { LabSinks } from './sink.js';
import { CONTROL_PORT } from './scenario.js';
import { expectedArrived, judgeDelivery, type PodCounts } from './verdict.js';
import { probeAgent } from '../agent/cniserver/client.js';
import type { LabFile, Scenario, Step } from './scenario.js';
import {
  buildTopology,
  destroyTopology,
  LabTopology,
  newLabId,
  removeLeftoverLabs,
  UNDERLAY_PORT,
} from './topology.js';

export interface LabOptions {
  /** Path of the castnet launcher (bin/castnet). */
  castnetBin: string;
  /** Path of the CNI plugin (bin/castnet-cni). */
  cniBin: string;
  /** Extra agent flags. */
  agentArgs?: string[];
  /** Use this cluster (kubeconfig path) as the lookup service instead of the embedded one. */
  kubeconfig?: string;
  /**
   * tcpdump on every pod and on the underlay (default true): what receivedBy() and the scenario
   * reports count. Benchmarks turn it off, as a capture per packet would dominate their CPU figures.
   */
  captures?: boolean;
  log?: (line: string) => void;
}

export interface MessageReport {
  scenario: string;
  step: number;
  from: string;
  group: string;
  messages: number;
  underlay_datagrams: number;
  remote_member_nodes: number;
  /** Copies of each message (the most of any message) each pod's receiving application read. */
  received: Record<string, number>;
  /** Frames of each message (the most of any) each pod's interface capture saw, for diagnosis. */
  frames: Record<string, number>;
}

export interface ExpectationFailure {
  step: number;
  what: string;
}

export interface ScenarioReport {
  name: string;
  pass: boolean;
  messages: MessageReport[];
  failures: ExpectationFailure[];
  join_latency_ms: number[];
}

interface LabPod {
  name: string;
  ns: string;
  node: number;
  network: string;
  /** The network's name in the lab file (`network` is its name in the lookup service). */
  labNetwork: string;
  ip: string;
  /** Every address of the pod (the first is `ip`). */
  ips: string[];
  vmi?: string;
  mac: string;
  containerId: string;
  capture?: ChildProcess;
  pcap: string;
}

type JoinApp = 'socat' | 'mcfirst' | 'iperf';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long a send's copies and positive controls may take: generous, only a failure waits it out. */
const DELIVERY_TIMEOUT_MS = 10000;
const POLL_MS = 20;

export class Lab {
  private topo!: LabTopology;
  private lookup!: EmbeddedLookupServer;
  private store = new DirectoryStore();
  private k8s?: KubernetesLabDirectory;
  private agents = new Map<number, ChildProcess>();
  /** Agents that handed their node over to a successor: idle until the lab stops them. */
  private retired: ChildProcess[] = [];
  private agentStarts = 0;
  private pods = new Map<string, LabPod>();
  private joins = new Map<
    string,
    { children: ChildProcess[]; port: number; sources: string[]; app: JoinApp }
  >();
  private underlayCapture!: ChildProcess;
  private underlayPcap = '';
  private readonly sinks = new LabSinks();
  /** Ports every pod's receiving application listens on. */
  private readonly sinkPorts = new Set<number>([CONTROL_PORT]);
  private controlSeq = 0;
  private closed = false;

  constructor(
    private readonly file: LabFile,
    private readonly opts: LabOptions,
  ) {}

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** The lab's namespaces and node addresses (for tests that act from inside them). */
  get topology(): LabTopology {
    return this.topo;
  }

  get directory() {
    return this.k8s?.snapshot() ?? this.store.snapshot();
  }

  /** The node's name: in Kubernetes mode unique to the lab, as reports share the cluster. */
  private nodeName(index: number): string {
    return this.k8s?.nodeName(index) ?? this.topo.nodes[index]!.name;
  }

  /** The name the lab's network `name` has in the lookup service. */
  private networkName(name: string): string {
    return this.k8s?.networkName(name) ?? name;
  }

  /** A pod's namespace, addresses and endpoint ID. */
  podInfo(name: string): {
    ns: string;
    node: number;
    network: string;
    ip: string;
    mac: string;
    endpointId: number;
  } {
    const p = this.pod(name);
    const ep = this.directory.endpoints.find((e) => e.network === p.network && e.ips.includes(p.ip));
    return {
      ns: p.ns,
      node: p.node,
      network: p.network,
      ip: p.ip,
      mac: p.mac,
      endpointId: ep?.endpointId ?? 0,
    };
  }

  /** How many frames containing `token` reached pod `name`'s interface so far (its capture). */
  receivedBy(name: string, token: string): number {
    return countContaining(readPcap(readFileSync(this.pod(name).pcap)), token);
  }

  /**
   * How many datagrams starting with `token` pod `name`'s receiving application read so far on a
   * port it listens on (every port a join, send or scenario used).
   */
  deliveredTo(name: string, token: string): number {
    this.pod(name);
    return this.sinks.copies(name, token);
  }

  /** The agent's /v1/stats on node `index`. */
  async agentStats(index: number): Promise<Record<string, unknown>> {
    const { stdout } = await run('curl', [
      '-s',
      '--unix-socket',
      join(this.topo.dir, `node-${index}`, 'stats.sock'),
      'http://agent/v1/stats',
    ]);
    return JSON.parse(stdout) as Record<string, unknown>;
  }

  async joinGroup(pod: string, group: string, port = 5000): Promise<void> {
    this.listenOn(port);
    await this.join({ pod, group, port });
  }

  async sendTo(from: string, to: string, port = 5000): Promise<string> {
    this.listenOn(port);
    const [token] = await this.send('api', 0, { from, to, port, ttl: 1, count: 1, loopback: false });
    return token!;
  }

  get lookupSocket(): string {
    return join(this.topo.dir, 'lookup.sock');
  }

  async start(): Promise<void> {
    const stale = await removeLeftoverLabs();
    if (stale.length) this.log(`removed leftovers of earlier labs: ${stale.join(', ')}`);
    this.topo = await buildTopology(newLabId(), this.file.nodes, this.file.underlayMtu);
    if (this.opts.kubeconfig) {
      this.k8s = new KubernetesLabDirectory(this.topo.id, this.topo.dir, this.opts.kubeconfig);
      await this.k8s.start(this.file.networks as NetworkSpec[]);
      this.log(`lookup service: Kubernetes (${this.opts.kubeconfig}), objects labelled ${this.k8s.selector}`);
    } else {
      this.store.setNetworks(this.file.networks as NetworkSpec[]);
      this.lookup = new EmbeddedLookupServer(this.store, this.lookupSocket);
      await this.lookup.listen();
    }
    this.underlayPcap = join(this.topo.dir, 'underlay.pcap');
    if (this.opts.captures !== false)
      this.underlayCapture = await this.startCapture(this.topo.underlayNs, 'ul', this.underlayPcap, [
        'udp',
        'port',
        String(UNDERLAY_PORT),
      ]);
    for (const node of this.topo.nodes) await this.startAgent(node.index);
    for (const s of this.file.scenarios)
      for (const st of s.steps) if ('send' in st) this.sinkPorts.add(st.send.port);
    for (const p of this.file.pods) await this.addPod(p.name, p.node, p.network, p.vmi);
    if (this.k8s) await this.k8s.setGroups(this.resolveGroups());
    else this.store.setGroups(this.resolveGroups());
  }

  private agentSocket(node: number): string {
    return join(this.topo.dir, `node-${node}`, 'agent.sock');
  }

  /**
   * Starts a second agent on node `index` while the first still runs, as a rolling update's surge
   * pod does, and resolves once the new one serves the node (the first handed it over).
   */
  async handOverAgent(index: number): Promise<{ previous: ChildProcess; next: ChildProcess }> {
    const previous = this.agents.get(index);
    if (!previous) throw new Error(`node ${index}: no agent is running to hand over`);
    this.retired.push(previous);
    await this.startAgent(index);
    return { previous, next: this.agents.get(index)! };
  }

  private async startAgent(index: number): Promise<void> {
    const node = this.topo.nodes[index]!;
    const instance = `lab-node-${index}-${++this.agentStarts}`;
    const dir = join(this.topo.dir, `node-${index}`);
    mkdirSync(dir, { recursive: true });
    const logFd = openSync(join(dir, 'agent.log'), 'a');
    const name = this.nodeName(index);
    if (this.k8s && !this.agents.has(index)) this.k8s.startNodeProxy(node.ns);
    const lookup = this.k8s?.agentArgs() ?? ['--lookup', `unix:${this.lookupSocket}`];
    const child = spawnIn(
      node.ns,
      this.opts.castnetBin,
      [
        'agent',
        '--node-name',
        name,
        '--socket',
        this.agentSocket(index),
        '--state-dir',
        join(dir, 'state'),
        '--pool-index',
        String(index),
        ...lookup,
        '--underlay-address',
        node.address,
        '--underlay-port',
        String(UNDERLAY_PORT),
        '--instance',
        instance,
        ...(this.opts.agentArgs ?? []),
      ],
      { stdio: ['ignore', logFd, logFd] },
    );
    this.agents.set(index, child);
    // This agent, not a predecessor still serving the socket (agent-ready --instance).
    const serving = () =>
      probeAgent(this.agentSocket(index), 1000, instance).then(
        () => true,
        () => false,
      );
    const deadline = Date.now() + 20000;
    while (!(await serving()) || !this.directory.nodes.some((n) => n.name === name)) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`agent on ${name} did not become ready (see ${join(dir, 'agent.log')})`);
      await sleep(10);
    }
  }

  async restartAgent(index: number): Promise<void> {
    const child = this.agents.get(index);
    if (child) await stop(child);
    await run('rm', ['-f', this.agentSocket(index)]);
    await this.startAgent(index);
    await this.waitForDataplane(index);
  }

  /**
   * A restarted agent's socket and node record come back before its data plane has its endpoints
   * again (with the Kubernetes lookup, seconds later): probes (link-local multicast on the control
   * port) go both ways between a pod on the node and one of its network elsewhere, again every
   * 250 ms, until one got through each way.
   */
  private async waitForDataplane(index: number): Promise<void> {
    const here = [...this.pods.values()].find((p) => p.node === index);
    const there = here && [...this.pods.values()].find((p) => p.network === here.network && p.node !== index);
    if (!here || !there) return;
    const started = Date.now();
    const deadline = started + 20000;
    const got = { in: false, out: false };
    const probe = async (from: LabPod, to: LabPod, way: 'in' | 'out') => {
      const token = `castnet-lab-probe:${++this.controlSeq}`;
      const group = from.ips.some((a) => isIPv4(a)) ? '224.0.0.1' : 'ff02::1';
      await this.socatSend(from, group, CONTROL_PORT, 1, false, token, token + '\n');
      for (const until = Date.now() + 250; Date.now() < until && !got[way]; await sleep(POLL_MS))
        got[way] = this.sinks.copies(to.name, token) > 0;
    };
    while (!(got.in && got.out)) {
      if (Date.now() > deadline)
        throw new Error(
          `node-${index}'s data plane did not carry a probe within 20000 ms of its agent's restart`,
        );
      if (!got.in) await probe(there, here, 'in');
      if (!got.out) await probe(here, there, 'out');
    }
    this.log(
      `node-${index}'s data plane carried probes both ways ${Date.now() - started} ms after its agent was up`,
    );
  }

  private async cni(
    command: string,
    pod: { ns: string; containerId: string; network: string; node: number },
    args: string,
  ): Promise<unknown> {
    const conf = {
      cniVersion: '1.1.0',
      name: pod.network,
      type: 'castnet',
      network: pod.network,
      agentSocket: this.agentSocket(pod.node),
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
      child.on('exit', (code) => {
        const text = Buffer.concat(out).toString('utf8');
        if (code !== 0) return reject(new Error(`castnet-cni ${command} for pod ${pod.ns} failed: ${text}`));
        resolve(text ? JSON.parse(text) : undefined);
      });
      child.stdin.end(JSON.stringify(conf));
    });
  }

  /** Wires a new pod with castnet-cni (an ADD through node `node`'s agent). */
  async addLabPod(name: string, node: number, network: string): Promise<void> {
    await this.addPod(name, node, this.networkName(network));
  }

  private async addPod(
    name: string,
    node: number,
    labNetwork: string,
    vmi?: string,
    migrationJobUid?: string,
  ): Promise<void> {
    const network = this.networkName(labNetwork);
    const ns = `${this.topo.id}-p-${name}`;
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const containerId = createHash('sha256').update(ns).digest('hex').slice(0, 32);
    const podName = vmi ? `virt-launcher-${vmi}-${containerId.slice(0, 5)}` : name;
    // virt-launcher pods carry KubeVirt's real labels and annotations; the agent derives the VM identity.
    const podNs = this.k8s?.namespace ?? 'lab';
    const meta = vmi
      ? launcherPodMeta(podNs, vmi, podName, {
          vmiUid: createHash('sha256').update(vmi).digest('hex').slice(0, 36),
          migrationJobUid,
        })
      : undefined;
    if (meta) this.store.setPod(meta);
    // In Kubernetes mode the pod exists as an object too: the agent reads a virt-launcher's labels
    // from it, and the controller counts the endpoint.
    await this.k8s?.ensurePod(podName, this.nodeName(node), meta);
    const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${podNs};K8S_POD_NAME=${podName};K8S_POD_INFRA_CONTAINER_ID=${containerId}`;
    const result = (await this.cni('ADD', { ns, containerId, network, node }, args)) as {
      ips: { address: string }[];
      interfaces: { name: string; mac: string; sandbox?: string }[];
    };
    const ips = result.ips.map((a) => a.address.split('/')[0]!);
    const ip = ips[0]!;
    const mac = result.interfaces.find((i) => i.sandbox)?.mac ?? '';
    const pcap = join(this.topo.dir, `pod-${name}.pcap`);
    const capture =
      this.opts.captures === false ? undefined : await this.startCapture(ns, 'eth0', pcap, ['-Q', 'in']);
    this.pods.set(name, {
      name,
      ns,
      node,
      network,
      labNetwork,
      ip,
      ips,
      mac,
      containerId,
      capture,
      pcap,
      vmi,
    });
    for (const port of this.sinkPorts) this.openSink(this.pods.get(name)!, port);
    this.log(`pod ${name} on node-${node} (${network}): ${ip} ${mac}`);
  }

  /** Group members may be named by pod in the lab file; the directory wants addresses. */
  private resolveGroups(): GroupSpec[] {
    return this.file.groups.map((g) => ({
      namespace: this.k8s?.namespace ?? 'lab',
      name: g.name,
      network: this.networkName(g.network),
      address: g.address,
      staticMembers: g.staticMembers.map((m) => this.pods.get(m)?.ip ?? m),
      nestedGroups: g.nestedGroups,
      allowedSources: g.allowedSources.map((s) => this.pods.get(s)?.ip ?? s),
      ...(g.allowedSenders.length
        ? { allowedSenders: g.allowedSenders.map((s) => this.pods.get(s)?.ip ?? s) }
        : {}),
    }));
  }

  private async startCapture(
    ns: string,
    ifname: string,
    file: string,
    filter: string[],
  ): Promise<ChildProcess> {
    const child = spawnIn(
      ns,
      'tcpdump',
      ['-i', ifname, '-U', '--immediate-mode', '-n', '-s', '0', '-w', file, ...filter],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    // tcpdump says "listening on" once its socket is open: captures before that would be lost.
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(
        () => reject(new Error(`tcpdump on ${ns}/${ifname} did not start: ${err}`)),
        10000,
      );
      child.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        if (err.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`tcpdump on ${ns}/${ifname} exited ${code}: ${err}`)));
    });
    return child;
  }

  /** Every pod's receiving application listens on `port` from now on. */
  private listenOn(port: number): void {
    this.sinkPorts.add(port);
    for (const p of this.pods.values()) this.openSink(p, port);
  }

  private openSink(p: LabPod, port: number): void {
    const families = [...new Set(p.ips.map((a) => (isIPv6(a) ? 6 : 4) as 4 | 6))];
    this.sinks.open(p.name, `/run/netns/${p.ns}`, families, port);
  }

  private pod(name: string): LabPod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`unknown pod ${name}`);
    return p;
  }

  /**
   * Real applications join, so the pod's kernel sends real IGMP/MLD: socat for ASM, ssmping's mcfirst
   * for SSM (Debian's socat lacks ip-add-source-membership), or iperf2 for either.
   */
  private startJoin(
    p: LabPod,
    group: string,
    port: number,
    sources: string[],
    app?: JoinApp,
  ): ChildProcess[] {
    const v6 = isIPv6(group);
    const use = app ?? (sources.length ? 'mcfirst' : 'socat');
    if (use === 'socat' && sources.length) throw new Error(`socat cannot join ${group} source-specifically`);
    const iperf = (src?: string) =>
      spawnIn(p.ns, 'iperf', [
        '-s',
        '-u',
        ...(v6 ? ['-V'] : []),
        '-B',
        `${group}%eth0`,
        ...(src ? ['-H', src] : []),
        '-p',
        String(port),
      ]);
    const children =
      use === 'iperf'
        ? sources.length
          ? sources.map((src) => iperf(src))
          : [iperf()]
        : use === 'mcfirst'
          ? (sources.length ? sources : ['']).map((src) =>
              spawnIn(p.ns, 'mcfirst', [
                v6 ? '-6' : '-4',
                '-I',
                'eth0',
                '-c',
                '1000000',
                '-t',
                '86400',
                ...(src ? [src] : []),
                group,
                String(port),
              ]),
            )
          : [
              spawnIn(p.ns, 'socat', [
                '-u',
                v6
                  ? `UDP6-RECV:${port},reuseaddr,ipv6only=1,ipv6-join-group=[${group}]:eth0`
                  : `UDP4-RECV:${port},reuseaddr,ip-add-membership=${group}:${p.ip}`,
                'OPEN:/dev/null',
              ]),
            ];
    this.joins.set(`${p.name}/${group}`, { children, port, sources, app: use });
    return children;
  }

  private async join(step: Extract<Step, { join: unknown }>['join']): Promise<number> {
    const p = this.pod(step.pod);
    const started = Date.now();
    const before = this.membershipCount(p, step.group);
    const sources = (step.sources ?? []).map((s) => this.pods.get(s)?.ip ?? s);
    const children = this.startJoin(p, step.group, step.port, sources, step.app);
    const errors: string[] = [];
    for (const c of children) c.stderr?.on('data', (d: Buffer) => errors.push(d.toString().trim()));
    const died = () => children.find((c) => c.exitCode !== null);
    await this.waitFor(
      () => {
        if (died()) throw new Error(`${step.pod}'s join of ${step.group} failed: ${errors.join('; ')}`);
        return this.membershipCount(p, step.group) > before;
      },
      5000,
      `${step.pod}'s join of ${step.group} to reach the lookup service`,
    );
    return Date.now() - started;
  }

  private membershipCount(p: LabPod, group: string): number {
    const d = this.directory;
    const ep = d.endpoints.find((e) => e.network === p.network && e.ips.includes(p.ip));
    return d.memberships.filter(
      (m) => m.group === group && ep && m.node === ep.node && m.endpointId === ep.endpointId,
    ).length;
  }

  /**
   * Live migration as KubeVirt does it: a target virt-launcher pod on another node (its ADD takes
   * over the VM's MAC and IPs), then the VM resumes there and announces itself (gratuitous ARP), and
   * its group memberships continue from the target.
   */
  private async migrate(source: string, toNode: number, target: string): Promise<void> {
    const src = this.pod(source);
    await this.addPod(target, toNode, src.labNetwork, src.vmi, `migration-${target}`);
    const dst = this.pod(target);
    if (dst.mac !== src.mac || dst.ips.join() !== src.ips.join())
      throw new Error(
        `${target} did not take over ${source}'s endpoint: ${dst.mac} ${dst.ips} vs ${src.mac} ${src.ips}`,
      );
    await run('ip', ['netns', 'exec', dst.ns, 'arping', '-U', '-c', '1', '-I', 'eth0', dst.ip]);
    await this.waitFor(
      () => {
        const live = applyVmHandoff(this.directory).endpoints;
        return live.some((e) => e.node === this.nodeName(toNode) && e.mac === dst.mac);
      },
      5000,
      `${target} to become the live endpoint of VM ${src.vmi}`,
    );
    for (const [key, j] of [...this.joins]) {
      const [pod, group] = key.split('/');
      if (pod !== source) continue;
      this.startJoin(dst, group!, j.port, j.sources, j.app);
      // The VM's guest kernel keeps its memberships across a migration; the emulation's new
      // applications must have rejoined before anything is sent to the target.
      await this.waitForKernelMembership(dst, group!);
    }
  }

  private async removePod(name: string): Promise<void> {
    const p = this.pod(name);
    for (const key of [...this.joins.keys()]) {
      if (!key.startsWith(`${name}/`)) continue;
      for (const c of this.joins.get(key)!.children) await stop(c);
      this.joins.delete(key);
    }
    if (p.capture) await stop(p.capture);
    this.sinks.closePod(name);
    await this.cni('DEL', p, '');
    await run('ip', ['netns', 'delete', p.ns]);
    this.pods.delete(name);
  }

  private async ping(from: string, to: string, family: '4' | '6'): Promise<void> {
    const target = this.pod(to).ips.find((a) => isIPv6(a) === (family === '6'));
    if (!target) throw new Error(`${to} has no IPv${family} address`);
    await run('ip', [
      'netns',
      'exec',
      this.pod(from).ns,
      'ping',
      `-${family}`,
      '-c',
      '1',
      '-W',
      '2',
      target,
    ]).catch((err: Error) => {
      throw new Error(
        `${from} cannot reach ${to} at ${target}: ${err.message.split('\n').slice(-2).join(' ')}`,
        {
          cause: err,
        },
      );
    });
  }

  private async leave(pod: string, group: string): Promise<void> {
    const joined = this.joins.get(`${pod}/${group}`);
    if (!joined) throw new Error(`${pod} has not joined ${group}`);
    this.joins.delete(`${pod}/${group}`);
    for (const c of joined.children) await stop(c);
    const p = this.pod(pod);
    await this.waitFor(
      () => this.membershipCount(p, group) === 0,
      5000,
      `${pod}'s leave of ${group} to reach the lookup service`,
    );
  }

  private async send(
    scenario: string,
    stepIndex: number,
    s: Extract<Step, { send: unknown }>['send'],
  ): Promise<string[]> {
    const p = this.pod(s.from);
    const tokens: string[] = [];
    for (let k = 0; k < s.count; k++) {
      const token = `castnet-lab:${scenario}:${stepIndex}:${k}:${Math.random().toString(36).slice(2, 10)}`;
      tokens.push(token);
      const payload = (s.size ? token.padEnd(s.size - 1, '.') : token) + '\n';
      await this.socatSend(p, s.to, s.port, s.ttl, s.loopback, token, payload);
    }
    return tokens;
  }

  /**
   * One datagram from pod `p` with socat, out of its eth0. The sender's kernel keeps its own
   * multicast only with `loop`. The payload is registered first, so copies can be checked.
   */
  private async socatSend(
    p: LabPod,
    to: string,
    port: number,
    ttl: number,
    loop: boolean,
    token: string,
    payload: string,
  ): Promise<void> {
    const l = loop ? 1 : 0;
    const addr = isIPv6(to)
      ? `UDP6-DATAGRAM:[${to}]:${port},so-bindtodevice=eth0,ip-multicast-ttl=${ttl},ipv6-unicast-hops=${ttl},setsockopt-int=41:19:${l}`
      : `UDP4-DATAGRAM:${to}:${port},so-bindtodevice=eth0,broadcast,ip-multicast-ttl=${ttl},ip-multicast-if=${p.ip},ttl=${ttl},ip-multicast-loop=${l}`;
    this.sinks.expect(token, Buffer.from(payload));
    await run('ip', ['netns', 'exec', p.ns, 'socat', '-u', 'STDIN', addr], { input: payload });
  }

  /** Whether `to` is a broadcast address of the sender's network (Linux loops those back to it). */
  private isBroadcast(p: LabPod, to: string): boolean {
    if (to === '255.255.255.255') return true;
    const net = this.file.networks.find((n) => n.name === p.labNetwork);
    return !!net?.subnets.some((c) => {
      const cidr = parseCidr(c);
      return cidr !== undefined && subnetBroadcast(cidr) === to;
    });
  }

  /**
   * Sends each control (all-hosts link-local multicast on the control port, carrying a token of its
   * own). Returns, per pod that awaits one, its control's token and whether it crosses the underlay.
   */
  private async sendControls(controls: Control[]): Promise<Map<string, { token: string; crosses: boolean }>> {
    const awaited = new Map<string, { token: string; crosses: boolean }>();
    for (const c of controls) {
      const src = this.pod(c.source);
      const token = `castnet-lab-control:${++this.controlSeq}`;
      const to = src.ips.some((a) => isIPv4(a)) ? '224.0.0.1' : 'ff02::1';
      await this.socatSend(src, to, CONTROL_PORT, 1, false, token, token + '\n');
      for (const pod of c.awaitAt) awaited.set(pod, { token, crosses: this.pod(pod).node !== src.node });
    }
    return awaited;
  }

  /** Per pod, each message's copies as its application and its interface saw them. */
  private podCounts(tokens: string[], withFrames: boolean): Record<string, PodCounts> {
    const out: Record<string, PodCounts> = {};
    for (const p of this.pods.values()) {
      const frames = withFrames ? readPcap(readFileSync(p.pcap)) : undefined;
      out[p.name] = {
        app: tokens.map((t) => this.sinks.copies(p.name, t)),
        damaged: tokens.map((t) => this.sinks.damaged(p.name, t)),
        frames: frames && tokens.map((t) => countContaining(frames, t)),
      };
    }
    return out;
  }

  async runScenario(s: Scenario): Promise<ScenarioReport> {
    const report: ScenarioReport = {
      name: s.name,
      pass: true,
      messages: [],
      failures: [],
      join_latency_ms: [],
    };
    let last: { tokens: string[]; msg: MessageReport; loopback: boolean } | undefined;
    for (const [i, step] of s.steps.entries()) {
      try {
        if ('join' in step) report.join_latency_ms.push(await this.join(step.join));
        else if ('leave' in step) await this.leave(step.leave.pod, step.leave.group);
        else if ('sleep' in step) await sleep(step.sleep);
        else if ('restartAgent' in step) await this.restartAgent(step.restartAgent.node);
        else if ('ping' in step) await this.ping(step.ping.from, step.ping.to, step.ping.family);
        else if ('migrate' in step)
          await this.migrate(step.migrate.pod, step.migrate.toNode, step.migrate.as);
        else if ('removePod' in step) await this.removePod(step.removePod.pod);
        else if ('send' in step) {
          last = undefined;
          this.listenOn(step.send.port);
          const tokens = await this.send(s.name, i, step.send);
          const msg: MessageReport = {
            scenario: s.name,
            step: i,
            from: step.send.from,
            group: step.send.to,
            messages: tokens.length,
            underlay_datagrams: 0,
            remote_member_nodes: 0,
            received: {},
            frames: {},
          };
          report.messages.push(msg);
          const loopback = step.send.loopback || this.isBroadcast(this.pod(step.send.from), step.send.to);
          last = { tokens, msg, loopback };
        } else if ('expect' in step) {
          if (!last) throw new Error('expect without a preceding send');
          await this.check(step.expect, last, i, report);
        }
      } catch (err) {
        report.failures.push({ step: i, what: (err as Error).message });
      }
    }
    report.pass = report.failures.length === 0;
    return report;
  }

  /**
   * The verdict of a send: positive controls go out right after its messages; the counts are read
   * once every expected copy and every control arrived (or the deadline passed), so a late copy or
   * a duplicate is seen, and silence is only believed where a later message got through.
   */
  private async check(
    e: Extract<Step, { expect: unknown }>['expect'],
    last: { tokens: string[]; msg: MessageReport; loopback: boolean },
    step: number,
    report: ScenarioReport,
  ): Promise<void> {
    const from = this.pod(last.msg.from);
    const live = applyVmHandoff(this.directory).endpoints;
    const reachable = (p: LabPod) =>
      !p.vmi || live.some((ep) => ep.node === this.nodeName(p.node) && ep.mac === p.mac);
    const controls = await this.sendControls(
      planControls(
        [...this.pods.values()].map((p) => ({
          name: p.name,
          node: p.node,
          network: p.network,
          reachable: reachable(p),
        })),
        from.name,
      ),
    );
    const withFrames = this.opts.captures !== false;
    const base = {
      received: e.received,
      frames: e.frames,
      sender: from.name,
      senderLoopsBack: last.loopback,
    };
    const missing = () => [...controls].filter(([pod, c]) => this.sinks.copies(pod, c.token) === 0);
    // Captures lag their interfaces a little: each pod's capture must show its control, and the
    // underlay's every control that crossed it, before their counts are final.
    const capturesIn = () => {
      if (!withFrames) return true;
      for (const [pod, c] of controls)
        if (countContaining(readPcap(readFileSync(this.pod(pod).pcap)), c.token) === 0) return false;
      const ul = readPcap(readFileSync(this.underlayPcap));
      return [...controls.values()].every((c) => !c.crosses || countContaining(ul, c.token) > 0);
    };
    const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (
        missing().length === 0 &&
        expectedArrived({ ...base, pods: this.podCounts(last.tokens, false) }) &&
        capturesIn()
      )
        break;
      await sleep(POLL_MS);
    }
    const pods = this.podCounts(last.tokens, withFrames);
    const ul = withFrames ? readPcap(readFileSync(this.underlayPcap)) : [];
    const underlay = last.tokens.map((t) => countContaining(ul, t));
    const memberNodes = new Set(
      [...Object.entries(e.received), ...Object.entries(e.frames)]
        .filter(([pod, n]) => n > 0 && this.pods.has(pod))
        .map(([pod]) => this.pod(pod).node)
        .filter((n) => n !== from.node),
    );
    last.msg.remote_member_nodes = memberNodes.size;
    last.msg.underlay_datagrams = Math.max(...underlay);
    last.msg.received = Object.fromEntries(Object.entries(pods).map(([pod, c]) => [pod, Math.max(...c.app)]));
    last.msg.frames = Object.fromEntries(
      Object.entries(pods).map(([pod, c]) => [pod, c.frames ? Math.max(...c.frames) : 0]),
    );
    const failures = judgeDelivery({
      ...base,
      pods,
      controlsMissing: missing().map(([pod]) => pod),
      underlay: withFrames ? { want: e.underlayDatagrams, got: underlay } : undefined,
    });
    for (const what of failures) report.failures.push({ step, what });
  }

  /** Polls until pod `p`'s kernel lists `group` on eth0 (the joined application's socket is in). */
  private async waitForKernelMembership(p: LabPod, group: string): Promise<void> {
    const deadline = Date.now() + 5000;
    const want = `${isIPv6(group) ? 'inet6' : 'inet'}  ${group}`;
    for (;;) {
      const { stdout } = await run('ip', ['-n', p.ns, 'maddr', 'show', 'dev', 'eth0']);
      if (stdout.split('\n').some((l) => l.trim().replace(/\s+/, '  ') === want)) return;
      if (Date.now() > deadline)
        throw new Error(`timed out after 5000 ms waiting for ${p.name}'s kernel to join ${group}`);
      await sleep(POLL_MS);
    }
  }

  private async waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(10);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sinks.close();
    for (const j of this.joins.values()) for (const c of j.children) await stop(c);
    for (const p of this.pods.values()) {
      if (p.capture) await stop(p.capture);
      await this.cni('DEL', p, '').catch((err: Error) => this.log(`DEL of ${p.name}: ${err.message}`));
    }
    for (const child of [...this.agents.values(), ...this.retired]) await stop(child);
    if (this.underlayCapture) await stop(this.underlayCapture);
    await this.lookup?.close();
    await this.k8s?.close(
      this.topo.nodes.map((n) => this.nodeName(n.index)),
      (line) => this.log(line),
    );
    if (this.topo) await destroyTopology(this.topo);
  }
}
