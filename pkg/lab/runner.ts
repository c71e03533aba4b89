// A lab: the nodes' namespaces and underlay (topology.ts), the lookup service (lookup.ts: embedded
// or Kubernetes), one real `castnet agent` per node (agents.ts), pods wired by the real castnet-cni
// (pods.ts), the applications and captures in them (traffic.ts), and the scenario player
// (player.ts). Lab owns them in one DisposableStore, so dispose(), or a start() that fails, tears
// down whatever was built, last built first.
import type { ChildProcess } from 'node:child_process';
import { errorMessage } from '../base/errors.js';
import { DisposableStore, type Disposable } from '../base/lifecycle.js';
import type { Directory } from '../lookup/port.js';
import { LabAgents } from './agents.js';
import type { Guest } from './guest.js';
import type { MigrationFigures } from './migration.js';
import { labLookup, type LabLookup } from './lookup.js';
import { ScenarioPlayer, type ScenarioReport } from './player.js';
import { LabPods } from './pods.js';
import type { LabFile, Scenario } from './scenario.js';
import { newLabId, removeLeftoverLabs, Topology, type LabTopology } from './topology.js';
import { LabTraffic } from './traffic.js';

export type { ExpectationFailure, MessageReport, ScenarioReport } from './player.js';

/** A VM pod's guest, as the lab report shows it. */
export interface GuestReport {
  pod: string;
  node: number;
  accelerator: string;
  boot_ms: number;
  /** Datagrams the guest's own receiving application read, by its own count (the lab's controls too). */
  datagrams_read: number;
}

export interface LabOptions {
  /** Path of the castnet launcher (bin/castnet). */
  castnetBin: string;
  /** Path of the CNI plugin (bin/castnet-cni). */
  cniBin: string;
  /** Extra agent flags. */
  agentArgs?: string[];
  /** Extra flags of one node's agent (by node index), after `agentArgs`. */
  nodeAgentArgs?: Record<number, string[]>;
  /** Use this cluster (kubeconfig path) as the lookup service instead of the embedded one. */
  kubeconfig?: string;
  /**
   * tcpdump on every pod and on the underlay (default true): what receivedBy() and the scenario
   * reports count. Benchmarks turn it off, as a capture per packet would dominate their CPU figures.
   */
  captures?: boolean;
  log?: (line: string) => void;
}

/** The lab's parts, once start() built them. */
interface Running {
  topology: Topology;
  lookup: LabLookup;
  agents: LabAgents;
  pods: LabPods;
  traffic: LabTraffic;
  player: ScenarioPlayer;
}

export class Lab implements Disposable {
  private readonly owned = new DisposableStore();
  private parts?: Running;

  constructor(
    private readonly file: LabFile,
    private readonly opts: LabOptions,
  ) {}

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private get running(): Running {
    if (!this.parts) throw new Error('the lab is not started');
    return this.parts;
  }

  /**
   * Builds the nodes, starts the lookup service and every node's agent, wires the pods and declares
   * the groups. On a failure, tears down what it built before rethrowing.
   */
  async start(): Promise<void> {
    try {
      await this.build();
    } catch (err) {
      await this.owned
        .dispose()
        .catch((e: unknown) => this.log(`teardown after a failed start: ${errorMessage(e)}`));
      throw err;
    }
  }

  private async build(): Promise<void> {
    const stale = await removeLeftoverLabs();
    if (stale.length) this.log(`removed leftovers of earlier labs: ${stale.join(', ')}`);
    const log = (line: string) => this.log(line);
    const topology = this.owned.add(new Topology(newLabId(), this.file.nodes, this.file.underlayMtu));
    const topo = await topology.start();
    const lookup = this.owned.add(labLookup(topo, this.opts.kubeconfig, log));
    await lookup.start(this.file.networks);
    const traffic = this.owned.add(new LabTraffic(topo, this.opts.captures !== false, log));
    await traffic.start();
    const agents = this.owned.add(new LabAgents(topo, lookup, this.opts));
    // Added after the agents, so disposed before them: a pod's CNI DEL goes through its node's agent.
    const pods = this.owned.add(
      new LabPods(topology, lookup, traffic, {
        cniBin: this.opts.cniBin,
        agentSocket: (node) => agents.socket(node),
        log,
      }),
    );
    const player = new ScenarioPlayer({ file: this.file, lookup, agents, pods, traffic });
    this.parts = { topology, lookup, agents, pods, traffic, player };
    for (const node of topo.nodes) await agents.start(node.index);
    // Every port a scenario sends to, listened on from each pod's start.
    for (const s of this.file.scenarios)
      for (const st of s.steps) if (st.kind === 'send') await traffic.listenOn(st.port);
    for (const p of this.file.pods)
      await pods.add(
        p.name,
        p.node,
        p.network,
        p.vmi,
        undefined,
        p.allowedAddressPairs,
        p.namespace,
        true,
        p.vm,
      );
    // Group members may be named by pod in the lab file; the directory wants addresses.
    // Created in file order: the earlier group is the older when two claim one address.
    const created = Date.now();
    await lookup.setGroups(
      this.file.groups.map((g, i) => ({
        namespace: g.namespace ?? lookup.namespace,
        createdAt: created + i,
        name: g.name,
        network: lookup.networkName(g.network),
        address: g.address,
        staticMembers: g.staticMembers.map((m) => pods.addressOf(m)),
        nestedGroups: g.nestedGroups,
        allowedSources: g.allowedSources.map((s) => pods.addressOf(s)),
        ...(g.allowedSenders.length
          ? { allowedSenders: g.allowedSenders.map((s) => pods.addressOf(s)) }
          : {}),
      })),
    );
  }

  /** The lab's namespaces and node addresses (for tests that act from inside them). */
  get topology(): LabTopology {
    return this.running.topology.layout;
  }

  /** What the agents see in the lookup service now. */
  get directory(): Directory {
    return this.running.lookup.directory();
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
    const p = this.running.pods.get(name);
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

  /** The VM pods' guests: how each ran and what it read. */
  guests(): GuestReport[] {
    const { pods, traffic } = this.running;
    return pods
      .all()
      .filter((p) => p.guest)
      .map((p) => ({
        pod: p.name,
        node: p.node,
        accelerator: p.guest!.accelerator ?? 'unknown',
        boot_ms: p.bootMs ?? 0,
        datagrams_read: traffic.readsInGuest(p.name),
      }));
  }

  /** How many frames containing `token` reached pod `name`'s interface so far (its capture). */
  receivedBy(name: string, token: string): number {
    return this.running.traffic.framesAt(name, token);
  }

  /** The agent's /v1/stats on node `index`. */
  agentStats(index: number): Promise<Record<string, unknown>> {
    return this.running.agents.stats(index);
  }

  /** Pod `pod` joins `group` (every pod listens on `port`); resolves once the lookup service lists it. */
  async joinGroup(pod: string, group: string, port = 5000): Promise<void> {
    await this.running.traffic.listenOn(port);
    await this.running.player.join({ pod, group, port });
  }

  /** One message from pod `from` to `to` (every pod listens on `port`); returns its token. */
  async sendTo(from: string, to: string, port = 5000): Promise<string> {
    const { traffic, pods } = this.running;
    await traffic.listenOn(port);
    const m = { to, port, ttl: 1, count: 1, loopback: false };
    const [token] = await traffic.send(pods.get(from), m, 'castnet-lab:api:0');
    return token!;
  }

  /**
   * Starts a second agent on node `index` while the first still runs, as a rolling update's surge
   * pod does, and resolves once the new one serves the node (the first handed it over).
   */
  handOverAgent(index: number): Promise<{ previous: ChildProcess; next: ChildProcess }> {
    return this.running.agents.handOver(index);
  }

  /**
   * Stops node `index`'s agent and starts a new one, with `args` as its own extra flags when given
   * (a node upgraded or downgraded in place).
   */
  async restartAgent(index: number, args?: string[]): Promise<void> {
    await this.running.agents.restart(index, args);
  }

  /** Sends `signal` to node `index`'s agent (SIGHUP: rotate its key pair). */
  signalAgent(index: number, signal: NodeJS.Signals): void {
    this.running.agents.signal(index, signal);
  }

  /**
   * Wires a new pod with castnet-cni (an ADD through node `node`'s agent) in the lab file's `network`
   * (in Kubernetes namespace `namespace`, default the lookup's); with `vmi`, a virt-launcher pod of
   * that VMI, which the VMI's status names unless `namedByVmi` is false.
   */
  async addLabPod(
    name: string,
    node: number,
    network: string,
    namespace?: string,
    o: { vmi?: string; namedByVmi?: boolean } = {},
  ): Promise<void> {
    await this.running.pods.add(name, node, network, o.vmi, undefined, [], namespace, o.namedByVmi);
  }

  /** VM pod `name`'s guest (the lab file's `vm`); throws for a pod without one. */
  guest(name: string): Guest {
    const g = this.running.pods.get(name).guest;
    if (!g) throw new Error(`pod ${name} runs no guest (set vm in the lab file)`);
    return g;
  }

  /**
   * Live-migrates VM pod `pod`'s guest to a new virt-launcher pod `as` on node `toNode`, and resolves
   * once castnet delivers to the target: with the guest there and QEMU's figures.
   */
  async migrateVm(
    pod: string,
    toNode: number,
    as: string,
  ): Promise<{ target: Guest; figures: MigrationFigures }> {
    const figures = await this.running.player.migrate({ pod, toNode, as });
    if (!figures) throw new Error(`pod ${pod} runs no guest: its migration is emulated`);
    return { target: this.guest(as), figures };
  }

  /** Whether the lookup service lists pod `pod`'s endpoint as a member of `group`. */
  isMember(pod: string, group: string): boolean {
    return this.running.player.isMember(pod, group);
  }

  runScenario(s: Scenario): Promise<ScenarioReport> {
    return this.running.player.play(s);
  }

  /** Stops everything the lab started and removes its namespaces (idempotent). */
  async dispose(): Promise<void> {
    await this.owned.dispose();
  }
}
