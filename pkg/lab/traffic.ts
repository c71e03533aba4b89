// The lab's traffic: real applications in the pods (socat, mcfirst and iperf2 join groups, so each
// pod's kernel speaks real IGMP/MLD; socat sends), the receiving application in every pod (sink.ts)
// that counts what each pod's kernel delivered, and tcpdump on every pod and on the underlay, whose
// pcaps show what crossed each interface. In a VM pod the applications are castnet-guest in the
// guest, driven over its console; its lines are the guest's own counts, and the capture is on the
// tap (what the guest was handed).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { sleep, waitFor } from '../base/async.js';
import type { Disposable } from '../base/lifecycle.js';
import { run, spawnIn, stop } from '../sys/exec.js';
import type { Guest } from './guest.js';
import type { Control } from './controls.js';
import { countContaining, readPcap } from './pcap.js';
import type { LabPod, PodObserver } from './pods.js';
import { CONTROL_PORT, type StepOf } from './scenario.js';
import { LabSinks } from './sink.js';
import { UNDERLAY_PORT, type LabTopology } from './topology.js';
import { tokenOf, type PodCounts } from './verdict.js';

export type JoinApp = NonNullable<StepOf<'join'>['app']>;

/** A send's messages: where to, and how (a send step's fields). */
export type Messages = Pick<StepOf<'send'>, 'to' | 'port' | 'ttl' | 'count' | 'size' | 'loopback'>;

/** A control awaited at a pod: its token, and whether it crossed the underlay to get there. */
export interface AwaitedControl {
  token: string;
  crosses: boolean;
}

interface Joined {
  children: ChildProcess[];
  /** A VM pod's joining castnet-guest processes, by pid in its guest. */
  guestPids: number[];
  port: number;
  sources: string[];
  app: JoinApp;
}

interface Watched {
  pod: LabPod;
  capture?: ChildProcess;
  pcap: string;
  /** A VM pod's guest: the ports its receiving castnet-guest listens on, and its console subscription. */
  guestPorts?: Set<number>;
  guestLines?: Disposable;
  /** Its guest live-migrated to another pod: nothing runs here any more. */
  guestGone?: boolean;
}

/** A datagram the guest's receiving castnet-guest read (scripts/guest/castnet-guest.c). */
const GUEST_RX = /^castnet-guest rx port=(\d+) from=\S+ len=\d+ sum=([0-9a-f]{16}) data=(.*)$/;
/** How long a guest's castnet-guest may take to bind and join (TCG on a loaded machine). */
const GUEST_TOOL_TIMEOUT_MS = 15000;

/** Single-quoted for the guest's shell. */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const POLL_MS = 20;
/** How long a restarted agent's data plane may take to carry probes again. */
const DATAPLANE_TIMEOUT_MS = 20000;
/** How long a pod's kernel may take to list a group its application joined. */
const KERNEL_JOIN_TIMEOUT_MS = 5000;

export class LabTraffic implements Disposable, PodObserver {
  private readonly sinks = new LabSinks();
  /** Ports every pod's receiving application listens on. */
  private readonly sinkPorts = new Set<number>([CONTROL_PORT]);
  /** Every pod of the lab, in the order they were added. */
  private readonly pods = new Map<string, Watched>();
  /** `<pod>/<group>` -> the applications that joined. */
  private readonly joins = new Map<string, Joined>();
  private underlayCapture?: ChildProcess;
  private controlSeq = 0;
  /** Per VM pod, the datagrams its guest's receiving castnet-guest printed. */
  private readonly guestReads = new Map<string, number>();

  constructor(
    private readonly topo: LabTopology,
    /** tcpdump on every pod and on the underlay (off: frame counts are not taken). */
    readonly captures: boolean,
    private readonly log: (line: string) => void,
  ) {}

  private get underlayPcap(): string {
    return join(this.topo.dir, 'underlay.pcap');
  }

  /** Starts the underlay capture (with captures on). */
  async start(): Promise<void> {
    if (this.captures)
      this.underlayCapture = await this.startCapture(this.topo.underlayNs, 'ul', this.underlayPcap, [
        'udp',
        'port',
        String(UNDERLAY_PORT),
      ]);
  }

  /** Every pod's receiving application listens on `port` from now on. */
  async listenOn(port: number): Promise<void> {
    this.sinkPorts.add(port);
    for (const w of this.pods.values()) await this.openSink(w, port);
  }

  /**
   * Watches a new pod: its interface capture (a VM pod's tap, frames to the guest) and its receiving
   * application on every port.
   */
  async attach(pod: LabPod, migratedFrom?: LabPod): Promise<void> {
    const pcap = join(this.topo.dir, `pod-${pod.name}.pcap`);
    const w: Watched = { pod, pcap };
    this.pods.set(pod.name, w);
    if (pod.guest) {
      // A migrated guest's castnet-guest processes came with it: its receiving one's ports, its joins.
      const from = migratedFrom && this.pods.get(migratedFrom.name);
      w.guestPorts = new Set(from?.guestPorts);
      if (from) from.guestGone = true;
      for (const [key, j] of [...this.joins])
        if (migratedFrom && key.startsWith(`${migratedFrom.name}/`)) {
          this.joins.delete(key);
          this.joins.set(`${pod.name}/${key.slice(migratedFrom.name.length + 1)}`, j);
        }
      w.guestLines = pod.guest.onLine((line) => this.guestLine(pod.name, line));
    }
    if (this.captures)
      w.capture = pod.guest
        ? await this.startCapture(pod.ns, pod.guest.spec.tap, pcap, ['-Q', 'out'])
        : await this.startCapture(pod.ns, 'eth0', pcap, ['-Q', 'in']);
    for (const port of this.sinkPorts) await this.openSink(w, port);
  }

  /** A guest's console line: a datagram its receiving castnet-guest read is a copy for the tallies. */
  private guestLine(pod: string, line: string): void {
    const m = GUEST_RX.exec(line);
    if (!m) return;
    const port = Number(m[1]);
    if (!this.pods.get(pod)?.guestPorts?.has(port)) return;
    this.guestReads.set(pod, (this.guestReads.get(pod) ?? 0) + 1);
    this.sinks.recordDigest(pod, tokenOf(Buffer.from(m[3]!, 'latin1')), m[2]!);
  }

  /** Runs castnet-guest in the background in `guest` and resolves with its pid once it is ready. */
  private async guestTool(guest: Guest, args: string): Promise<number> {
    const ready = guest.waitForLine(
      (l) => l.startsWith('castnet-guest ready') || l.startsWith('castnet-guest error'),
      GUEST_TOOL_TIMEOUT_MS,
    );
    ready.catch(() => undefined); // awaited below, unless the start itself fails
    const pid = await guest.background(`castnet-guest ${args}`);
    const line = await ready;
    if (line.startsWith('castnet-guest error'))
      throw new Error(`guest ${guest.spec.name}: castnet-guest ${args}: ${line}`);
    return pid;
  }

  /** Stops a pod's joined applications, capture and receiving application (before its namespace goes). */
  async detach(name: string): Promise<void> {
    for (const [key, j] of [...this.joins]) {
      if (!key.startsWith(`${name}/`)) continue;
      this.joins.delete(key);
      for (const c of j.children) await stop(c);
    }
    const w = this.pods.get(name);
    this.pods.delete(name);
    await w?.guestLines?.dispose();
    if (w?.capture) await stop(w.capture);
    this.sinks.closePod(name);
  }

  private watched(name: string): Watched {
    const w = this.pods.get(name);
    if (!w) throw new Error(`unknown pod ${name}`);
    return w;
  }

  /** The pod's receiving application on `port`: a socket in its namespace, or castnet-guest in its guest. */
  private async openSink(w: Watched, port: number): Promise<void> {
    const p = w.pod;
    if (p.guest) {
      if (w.guestPorts!.has(port) || w.guestGone) return;
      await this.guestTool(p.guest, `recv -p ${port}`);
      w.guestPorts!.add(port);
      return;
    }
    const families = [...new Set(p.ips.map((a) => (isIPv6(a) ? 6 : 4) as 4 | 6))];
    this.sinks.open(p.name, `/run/netns/${p.ns}`, families, port);
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
      { stdio: ['ignore', 'ignore', 'pipe'] },
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
    }).catch(async (err: unknown) => {
      await stop(child);
      throw err;
    });
    return child;
  }

  /**
   * Real applications join, so the pod's kernel sends real IGMP/MLD: socat for ASM, ssmping's mcfirst
   * for SSM (Debian's socat lacks ip-add-source-membership), or iperf2 for either.
   */
  startJoin(p: LabPod, group: string, port: number, sources: string[], app?: JoinApp): ChildProcess[] {
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
    this.joins.set(`${p.name}/${group}`, { children, guestPids: [], port, sources, app: use });
    return children;
  }

  /**
   * A VM pod's guest joins from its own kernel (IGMPv3, MLDv2): castnet-guest with `-x` (joins
   * only: the receiving one counts), one per source for a source-specific join.
   */
  async joinInGuest(p: LabPod, group: string, port: number, sources: string[]): Promise<void> {
    const guest = p.guest;
    if (!guest) throw new Error(`${p.name} is not a VM pod`);
    const g = `${group}${sources.length ? `@${sources.join(',')}` : ''}`;
    const pid = await this.guestTool(guest, `recv -x -p ${port} -g ${g}`);
    this.joins.set(`${p.name}/${group}`, { children: [], guestPids: [pid], port, sources, app: 'socat' });
  }

  /** Stops the applications with which pod `pod` joined `group`. */
  async leave(pod: string, group: string): Promise<void> {
    const joined = this.joins.get(`${pod}/${group}`);
    if (!joined) throw new Error(`${pod} has not joined ${group}`);
    this.joins.delete(`${pod}/${group}`);
    for (const c of joined.children) await stop(c);
    // Closing its socket makes the guest's kernel report the leave.
    const guest = this.watched(pod).pod.guest;
    for (const pid of joined.guestPids) await guest?.run(`kill ${pid}`);
  }

  /**
   * A migrated VM's guest kernel keeps its memberships: `dst` joins every group `src` joined, with
   * the same applications, and its kernel lists each before anything is sent to it.
   */
  async moveJoins(src: LabPod, dst: LabPod): Promise<void> {
    for (const [key, j] of [...this.joins]) {
      const [pod, group] = key.split('/');
      if (pod !== src.name) continue;
      this.startJoin(dst, group!, j.port, j.sources, j.app);
      await this.waitForKernelMembership(dst, group!);
    }
  }

  /** Polls until pod `p`'s kernel lists `group` on eth0 (the joined application's socket is in). */
  private async waitForKernelMembership(p: LabPod, group: string): Promise<void> {
    const want = `${isIPv6(group) ? 'inet6' : 'inet'}  ${group}`;
    await waitFor(
      async () => {
        const { stdout } = await run('ip', ['-n', p.ns, 'maddr', 'show', 'dev', 'eth0']);
        return stdout.split('\n').some((l) => l.trim().replace(/\s+/, '  ') === want);
      },
      { what: `${p.name}'s kernel to join ${group}`, timeoutMs: KERNEL_JOIN_TIMEOUT_MS, intervalMs: POLL_MS },
    );
  }

  /** A gratuitous ARP from the pod, as a VM resumed elsewhere announces itself. */
  async announce(p: LabPod): Promise<void> {
    await run('ip', ['netns', 'exec', p.ns, 'arping', '-U', '-c', '1', '-I', 'eth0', p.ip]);
  }

  /** Sends `m.count` messages from `p`, each with a unique token starting with `tokenPrefix`. */
  async send(p: LabPod, m: Messages, tokenPrefix: string): Promise<string[]> {
    const tokens: string[] = [];
    for (let k = 0; k < m.count; k++) {
      const token = `${tokenPrefix}:${k}:${Math.random().toString(36).slice(2, 10)}`;
      tokens.push(token);
      const payload = (m.size ? token.padEnd(m.size - 1, '.') : token) + '\n';
      await this.socatSend(p, m.to, m.port, m.ttl, m.loopback, token, payload);
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
    this.sinks.expect(token, Buffer.from(payload));
    if (p.guest) {
      const size = Buffer.byteLength(payload) > token.length + 1 ? ` -s ${Buffer.byteLength(payload)}` : '';
      const args = `send -d ${to} -p ${port} -t ${ttl} -m ${shellQuote(token)}${size}${loop ? ' -l' : ''}`;
      await p.guest.run(`castnet-guest ${args}`);
      return;
    }
    const l = loop ? 1 : 0;
    const addr = isIPv6(to)
      ? `UDP6-DATAGRAM:[${to}]:${port},so-bindtodevice=eth0,ip-multicast-ttl=${ttl},ipv6-unicast-hops=${ttl},setsockopt-int=41:19:${l}`
      : `UDP4-DATAGRAM:${to}:${port},so-bindtodevice=eth0,broadcast,ip-multicast-ttl=${ttl},ip-multicast-if=${p.ip},ttl=${ttl},ip-multicast-loop=${l}`;
    await run('ip', ['netns', 'exec', p.ns, 'socat', '-u', 'STDIN', addr], { input: payload });
  }

  /** All-hosts link-local multicast (224.0.0.1, or ff02::1 without IPv4) on the control port, with a token of its own. */
  private async sendControl(from: LabPod, kind: string): Promise<string> {
    const token = `castnet-lab-${kind}:${++this.controlSeq}`;
    const to = from.ips.some((a) => isIPv4(a)) ? '224.0.0.1' : 'ff02::1';
    await this.socatSend(from, to, CONTROL_PORT, 1, false, token, token + '\n');
    return token;
  }

  /** Sends each control; returns, per pod that awaits one, its control. */
  async sendControls(controls: Control[]): Promise<Map<string, AwaitedControl>> {
    const awaited = new Map<string, AwaitedControl>();
    for (const c of controls) {
      const src = this.watched(c.source).pod;
      const token = await this.sendControl(src, 'control');
      for (const pod of c.awaitAt)
        awaited.set(pod, { token, crosses: this.watched(pod).pod.node !== src.node });
    }
    return awaited;
  }

  /**
   * A restarted agent's socket and node record come back before its data plane has its endpoints
   * again (with the Kubernetes lookup, seconds later): probes (link-local multicast on the control
   * port) go both ways between a pod on the node and one of its network elsewhere, again every
   * 250 ms, until one got through each way.
   */
  async waitForDataplane(index: number): Promise<void> {
    const pods = [...this.pods.values()].map((w) => w.pod);
    const here = pods.find((p) => p.node === index);
    const there = here && pods.find((p) => p.network === here.network && p.node !== index);
    if (!here || !there) return;
    const started = Date.now();
    const deadline = started + DATAPLANE_TIMEOUT_MS;
    const got = { in: false, out: false };
    const probe = async (from: LabPod, to: LabPod, way: 'in' | 'out') => {
      const token = await this.sendControl(from, 'probe');
      for (const until = Date.now() + 250; Date.now() < until && !got[way]; await sleep(POLL_MS))
        got[way] = this.sinks.copies(to.name, token) > 0;
    };
    while (!(got.in && got.out)) {
      if (Date.now() > deadline)
        throw new Error(
          `node-${index}'s data plane did not carry a probe within ${DATAPLANE_TIMEOUT_MS} ms of its agent's restart`,
        );
      if (!got.in) await probe(there, here, 'in');
      if (!got.out) await probe(here, there, 'out');
    }
    this.log(
      `node-${index}'s data plane carried probes both ways ${Date.now() - started} ms after its agent was up`,
    );
  }

  /** Unicast reachability: one ICMP echo from `from` to `to`'s address of the family. */
  async ping(from: LabPod, to: LabPod, family: '4' | '6'): Promise<void> {
    const target = to.ips.find((a) => isIPv6(a) === (family === '6'));
    if (!target) throw new Error(`${to.name} has no IPv${family} address`);
    const ping = from.guest
      ? from.guest.run(`ping -${family} -c 1 -W 2 ${target}`)
      : run('ip', ['netns', 'exec', from.ns, 'ping', `-${family}`, '-c', '1', '-W', '2', target]);
    await ping.catch((err: Error) => {
      throw new Error(
        `${from.name} cannot reach ${to.name} at ${target}: ${err.message.split('\n').slice(-2).join(' ')}`,
        { cause: err },
      );
    });
  }

  /** Datagrams VM pod `pod`'s guest read so far, by its own count (controls included). */
  readsInGuest(pod: string): number {
    return this.guestReads.get(pod) ?? 0;
  }

  /** Copies of message `token` pod `pod`'s receiving application read so far. */
  copies(pod: string, token: string): number {
    return this.sinks.copies(pod, token);
  }

  /** How many frames containing `token` reached pod `name`'s interface so far (its capture). */
  framesAt(name: string, token: string): number {
    return countContaining(readPcap(readFileSync(this.watched(name).pcap)), token);
  }

  /** Per message, the underlay datagrams that carried it (zeros with captures off). */
  underlayCounts(tokens: string[]): number[] {
    const ul = this.captures ? readPcap(readFileSync(this.underlayPcap)) : [];
    return tokens.map((t) => countContaining(ul, t));
  }

  /** Per pod, each message's copies as its application and (with `withFrames`) its interface saw them. */
  podCounts(tokens: string[], withFrames: boolean): Record<string, PodCounts> {
    const out: Record<string, PodCounts> = {};
    for (const { pod, pcap } of this.pods.values()) {
      const frames = withFrames ? readPcap(readFileSync(pcap)) : undefined;
      out[pod.name] = {
        app: tokens.map((t) => this.sinks.copies(pod.name, t)),
        damaged: tokens.map((t) => this.sinks.damaged(pod.name, t)),
        frames: frames && tokens.map((t) => countContaining(frames, t)),
      };
    }
    return out;
  }

  /**
   * Captures lag their interfaces a little: whether each pod's capture shows its control, and the
   * underlay's every control that crossed it, so their counts are final (true with captures off).
   */
  capturesShow(controls: Map<string, AwaitedControl>): boolean {
    if (!this.captures) return true;
    for (const [pod, c] of controls) if (this.framesAt(pod, c.token) === 0) return false;
    const ul = readPcap(readFileSync(this.underlayPcap));
    return [...controls.values()].every((c) => !c.crosses || countContaining(ul, c.token) > 0);
  }

  async dispose(): Promise<void> {
    this.sinks.dispose();
    for (const name of [...this.pods.keys()]) await this.detach(name);
    const capture = this.underlayCapture;
    this.underlayCapture = undefined;
    if (capture) await stop(capture);
  }
}
