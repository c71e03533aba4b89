// Plays a scenario on a running lab: one handler per step kind (an exhaustive switch over the
// tagged steps of scenario.ts), each step's failure recorded against it, and after each send its
// expect step's verdict: positive controls (controls.ts), then the counts, judged by verdict.ts.
import { sleep, waitFor } from '../base/async.js';
import { errorMessage } from '../base/errors.js';
import { subnetBroadcast, tryParseCidr } from '../netaddr/ip.js';
import { applyVmHandoff } from '../resolve/vm-handoff.js';
import type { LabAgents } from './agents.js';
import { planControls } from './controls.js';
import type { LabLookup } from './lookup.js';
import type { LabPod, LabPods } from './pods.js';
import type { LabFile, Scenario, Step, StepOf } from './scenario.js';
import type { LabTraffic } from './traffic.js';
import type { MigrationFigures } from './migration.js';
import { expectedArrived, judgeDelivery, summarizeDelivery } from './verdict.js';

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

/** The parts of a running lab that steps act on. */
export interface Stage {
  file: LabFile;
  lookup: LabLookup;
  agents: LabAgents;
  pods: LabPods;
  traffic: LabTraffic;
}

/** The send an expect step judges: its messages' tokens and the report they fill in. */
interface LastSend {
  tokens: string[];
  msg: MessageReport;
  /** The sender's own kernel hands it a copy (loopback asked for, or a broadcast). */
  loopback: boolean;
}

/** One scenario's run so far. */
interface Play {
  scenario: Scenario;
  report: ScenarioReport;
  last?: LastSend;
}

/** How long a send's copies and positive controls may take: generous, only a failure waits it out. */
const DELIVERY_TIMEOUT_MS = 10000;
/** How long a join or a leave may take to reach the lookup service. */
const MEMBERSHIP_TIMEOUT_MS = 5000;
/** Fine enough that a join's reported time is the lookup service's, not the polling's. */
const MEMBERSHIP_POLL_MS = 10;
const POLL_MS = 20;

export class ScenarioPlayer {
  constructor(private readonly stage: Stage) {}

  async play(scenario: Scenario): Promise<ScenarioReport> {
    const report: ScenarioReport = {
      name: scenario.name,
      pass: true,
      messages: [],
      failures: [],
      join_latency_ms: [],
    };
    const play: Play = { scenario, report };
    for (const [i, step] of scenario.steps.entries()) {
      try {
        await this.step(play, i, step);
      } catch (err) {
        report.failures.push({ step: i, what: errorMessage(err) });
      }
    }
    report.pass = report.failures.length === 0;
    return report;
  }

  private async step(play: Play, i: number, step: Step): Promise<void> {
    switch (step.kind) {
      case 'join':
        play.report.join_latency_ms.push(await this.join(step));
        return;
      case 'leave':
        return this.leave(step);
      case 'sleep':
        return sleep(step.ms);
      case 'restartAgent':
        await this.stage.agents.restart(step.node);
        return this.stage.traffic.waitForDataplane(step.node);
      case 'ping':
        return this.stage.traffic.ping(this.pod(step.from), this.pod(step.to), step.family);
      case 'migrate':
        await this.migrate(step);
        return;
      case 'removePod':
        return this.stage.pods.remove(step.pod);
      case 'restartVm':
        return this.restartVm(step);
      case 'send':
        // A send that fails leaves its expect nothing to judge (that step fails too).
        play.last = undefined;
        play.last = await this.send(play, i, step);
        return;
      case 'expect':
        if (!play.last) throw new Error('expect without a preceding send');
        for (const what of await this.check(step, play.last)) play.report.failures.push({ step: i, what });
        return;
      default: {
        // A step kind without a handler does not compile.
        const unhandled: never = step;
        throw new Error(`unknown step ${JSON.stringify(unhandled)}`);
      }
    }
  }

  private pod(name: string): LabPod {
    return this.stage.pods.get(name);
  }

  /** Joins and resolves, with the time it took, once the lookup service lists the membership. */
  async join(step: Omit<StepOf<'join'>, 'kind'>): Promise<number> {
    const p = this.pod(step.pod);
    const started = Date.now();
    const before = this.membershipCount(p, step.group);
    const sources = (step.sources ?? []).map((s) => this.stage.pods.addressOf(s));
    // A VM pod's guest joins from its own kernel; its tool is ready once it has joined.
    if (p.guest) await this.stage.traffic.joinInGuest(p, step.group, step.port, sources);
    const children = p.guest ? [] : this.stage.traffic.startJoin(p, step.group, step.port, sources, step.app);
    const errors: string[] = [];
    for (const c of children) c.stderr?.on('data', (d: Buffer) => errors.push(d.toString().trim()));
    await waitFor(
      () => {
        if (children.some((c) => c.exitCode !== null))
          throw new Error(`${step.pod}'s join of ${step.group} failed: ${errors.join('; ')}`);
        return this.membershipCount(p, step.group) > before;
      },
      {
        what: `${step.pod}'s join of ${step.group} to reach the lookup service`,
        timeoutMs: MEMBERSHIP_TIMEOUT_MS,
        intervalMs: MEMBERSHIP_POLL_MS,
        failFast: true,
      },
    );
    return Date.now() - started;
  }

  private async leave(step: StepOf<'leave'>): Promise<void> {
    await this.stage.traffic.leave(step.pod, step.group);
    const p = this.pod(step.pod);
    await waitFor(() => this.membershipCount(p, step.group) === 0, {
      what: `${step.pod}'s leave of ${step.group} to reach the lookup service`,
      timeoutMs: MEMBERSHIP_TIMEOUT_MS,
      intervalMs: MEMBERSHIP_POLL_MS,
    });
  }

  /** Whether the lookup service lists pod `name`'s endpoint as a member of `group`. */
  isMember(name: string, group: string): boolean {
    return this.membershipCount(this.pod(name), group) > 0;
  }

  /** The lookup service's memberships of pod `p`'s endpoint in `group`. */
  private membershipCount(p: LabPod, group: string): number {
    const d = this.stage.lookup.directory();
    const ep = d.endpoints.find((e) => e.network === p.network && e.ips.includes(p.ip));
    return d.memberships.filter(
      (m) => m.group === group && ep && m.node === ep.node && m.endpointId === ep.endpointId,
    ).length;
  }

  /** Whether the data plane still delivers to `p` (not a VM pod its migration target superseded). */
  private reachable(p: LabPod, live = applyVmHandoff(this.stage.lookup.directory()).endpoints): boolean {
    return !p.vmi || live.some((ep) => ep.node === this.stage.lookup.nodeName(p.node) && ep.mac === p.mac);
  }

  /**
   * Live migration as KubeVirt does it: a target virt-launcher pod on another node (its ADD takes
   * over the VM's MAC and IPs), then the VM resumes there and announces itself, and its group
   * memberships continue from the target. A VM pod's real guest migrates through QEMU (its
   * announcement is QEMU's own); a pod without one emulates it (a gratuitous ARP, its joins
   * restarted in the target).
   */
  async migrate(step: Omit<StepOf<'migrate'>, 'kind'>): Promise<MigrationFigures | undefined> {
    const src = this.pod(step.pod);
    let dst: LabPod;
    let figures: MigrationFigures | undefined;
    if (src.guest) ({ dst, figures } = await this.stage.pods.migrateGuest(src, step.as, step.toNode));
    else {
      dst = await this.stage.pods.add(step.as, step.toNode, src.labNetwork, src.vmi, `migration-${step.as}`);
      if (dst.mac !== src.mac || dst.ips.join() !== src.ips.join())
        throw new Error(
          `${step.as} did not take over ${step.pod}'s endpoint: ${dst.mac} ${dst.ips} vs ${src.mac} ${src.ips}`,
        );
      await this.stage.traffic.announce(dst);
    }
    await waitFor(() => this.reachable(dst), {
      what: `${step.as} to become the live endpoint of VM ${src.vmi}`,
      timeoutMs: MEMBERSHIP_TIMEOUT_MS,
      intervalMs: MEMBERSHIP_POLL_MS,
    });
    if (!src.guest) await this.stage.traffic.moveJoins(src, dst);
    return figures;
  }

  /**
   * A VM restarted on another node, as KubeVirt restarts one: its pod is deleted, a new virt-launcher
   * pod of the same VMI starts elsewhere and must get the VM's addresses back (reserved for the VM,
   * not the pod: docs/kubevirt.md "Addresses"); the booting guest announces itself.
   */
  private async restartVm(step: StepOf<'restartVm'>): Promise<void> {
    const old = this.pod(step.pod);
    if (!old.vmi) throw new Error(`${step.pod} is not a VMI pod (set vmi)`);
    await this.stage.pods.remove(step.pod);
    const vm = await this.stage.pods.add(step.as, step.toNode, old.labNetwork, old.vmi);
    if (vm.ips.join() !== old.ips.join())
      throw new Error(`${step.as} did not get VM ${old.vmi}'s addresses back: ${vm.ips} vs ${old.ips}`);
    await this.stage.traffic.announce(vm);
  }

  private async send(play: Play, i: number, step: StepOf<'send'>): Promise<LastSend> {
    await this.stage.traffic.listenOn(step.port);
    const from = this.pod(step.from);
    const tokens = await this.stage.traffic.send(from, step, `castnet-lab:${play.scenario.name}:${i}`);
    const msg: MessageReport = {
      scenario: play.scenario.name,
      step: i,
      from: step.from,
      group: step.to,
      messages: tokens.length,
      underlay_datagrams: 0,
      remote_member_nodes: 0,
      received: {},
      frames: {},
    };
    play.report.messages.push(msg);
    return { tokens, msg, loopback: step.loopback || this.isBroadcast(from, step.to) };
  }

  /** Whether `to` is a broadcast address of the sender's network (Linux loops those back to it). */
  private isBroadcast(p: LabPod, to: string): boolean {
    if (to === '255.255.255.255') return true;
    const net = this.stage.file.networks.find((n) => n.name === p.labNetwork);
    return !!net?.subnets.some((c) => {
      const cidr = tryParseCidr(c);
      return cidr !== undefined && subnetBroadcast(cidr) === to;
    });
  }

  /**
   * The verdict of a send: positive controls go out right after its messages; the counts are read
   * once every expected copy and every control arrived (or the deadline passed), so a late copy or
   * a duplicate is seen, and silence is only believed where a later message got through. Fills in
   * the send's report and returns the failures.
   */
  private async check(e: StepOf<'expect'>, last: LastSend): Promise<string[]> {
    const { traffic, pods } = this.stage;
    const from = this.pod(last.msg.from);
    const live = applyVmHandoff(this.stage.lookup.directory()).endpoints;
    const controls = await traffic.sendControls(
      planControls(
        pods.all().map((p) => ({
          name: p.name,
          node: p.node,
          network: p.network,
          reachable: this.reachable(p, live),
        })),
        from.name,
      ),
    );
    const withFrames = traffic.captures;
    const base = {
      received: e.received,
      frames: e.frames,
      sender: from.name,
      senderLoopsBack: last.loopback,
    };
    const missing = () => [...controls].filter(([pod, c]) => traffic.copies(pod, c.token) === 0);
    const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (
        missing().length === 0 &&
        expectedArrived({ ...base, pods: traffic.podCounts(last.tokens, false) }) &&
        traffic.capturesShow(controls)
      )
        break;
      await sleep(POLL_MS);
    }
    const counts = traffic.podCounts(last.tokens, withFrames);
    const underlay = traffic.underlayCounts(last.tokens);
    const nodes = new Map(pods.all().map((p) => [p.name, p.node]));
    Object.assign(last.msg, summarizeDelivery({ ...base, pods: counts }, underlay, nodes, from.node));
    return judgeDelivery({
      ...base,
      pods: counts,
      controlsMissing: missing().map(([pod]) => pod),
      underlay: withFrames ? { want: e.underlayDatagrams, got: underlay } : undefined,
    });
  }
}
