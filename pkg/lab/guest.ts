// A real qemu guest on a lab endpoint: Debian's cloud kernel and the project's initramfs
// (scripts/guest/build.sh, cached in .cache/guest/), run inside a pod's network namespace with its
// virtio-net on a tap there, as virt-launcher runs qemu. The host drives the guest's shell over the
// serial console (run(), one framed command at a time) and qemu over QMP (qmp()). docs/lab.md#vm-pods.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { errorMessage } from '../base/errors.js';
import { toDisposable, type Disposable } from '../base/lifecycle.js';
import { repoRoot } from './scenario.js';

export interface GuestSpec {
  name: string;
  /** The network namespace qemu runs in (a name under /run/netns). */
  netns: string;
  /** A tap in `netns` that already exists (the pod's wiring made it); qemu's virtio-net uses it. */
  tap: string;
  /** The guest's MAC (virtio-net's), e.g. the pod interface's original one. */
  mac: string;
  /** The guest's addresses with their prefix lengths (e.g. 10.20.0.5/16, fd00::5/64), set by its init. */
  addresses: string[];
  memoryMiB: number;
  /** qemu's directory (its QMP socket); created by start(), removed by dispose(). */
  workDir: string;
  /**
   * Start paused, waiting for a migration stream: a unix socket path (-incoming unix:PATH), or any
   * qemu migration URI with a scheme (tcp:HOST:PORT).
   */
  incoming?: string;
  /** The virtio-net MTU the guest adopts (virtio's host_mtu), e.g. the pod interface's. */
  mtu?: number;
  /** Default: the project's image (guestImage()). */
  image?: GuestImage;
}

export interface GuestImage {
  kernel: string;
  initramfs: string;
}

/** castnet-guest built for the host too (static): a lab pod that streams to guests runs it. */
export function guestTool(dir = path.join(repoRoot(), '.cache/guest')): string {
  const tool = path.join(dir, 'castnet-guest');
  if (!existsSync(tool)) throw new Error(`guest image: ${tool} is missing (make guest-image builds it)`);
  return tool;
}

export type Accelerator = 'kvm' | 'tcg';

/** A QMP event (migration progress, RESET, SHUTDOWN...). */
export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp?: { seconds: number; microseconds: number };
}

/** The project's guest image, which `make guest-image` (a prerequisite of `make deps`) builds. */
export function guestImage(dir = path.join(repoRoot(), '.cache/guest')): GuestImage {
  const image = { kernel: path.join(dir, 'vmlinuz'), initramfs: path.join(dir, 'initramfs.gz') };
  for (const f of Object.values(image))
    if (!existsSync(f)) throw new Error(`guest image: ${f} is missing (make guest-image builds it)`);
  return image;
}

const QEMU = 'qemu-system-x86_64';
/** The line init prints once it runs (the accelerator probe waits only for it). */
const BOOTED = 'castnet-guest-init booted';
/** The line init prints once eth0 is configured, just before the shell starts. */
const READY = 'castnet-guest-init ready';
/** How long a TCG boot may take on a loaded 2-core machine (about 4 s when idle). */
const BOOT_TIMEOUT_MS = 90_000;
/** A KVM boot that works reaches init in about a second; one that hangs never does. */
const KVM_PROBE_TIMEOUT_MS = 10_000;
const QMP_TIMEOUT_MS = 30_000;

let accelerator: Promise<Accelerator> | undefined;

/**
 * TCG, unless KVM is shown to work: a probe boots the image under KVM and must reach init in time
 * (on some hosts /dev/kvm opens but the guest hangs early in boot). CASTNET_GUEST_ACCEL=tcg|kvm
 * decides without probing. The verdict is cached per process, and per host kernel in the image's
 * directory.
 */
export function detectAccelerator(image: GuestImage = guestImage()): Promise<Accelerator> {
  return (accelerator ??= chooseAccelerator(image));
}

async function chooseAccelerator(image: GuestImage): Promise<Accelerator> {
  const forced = process.env.CASTNET_GUEST_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return forced;
  if (forced) throw new Error(`CASTNET_GUEST_ACCEL: ${forced} is neither tcg nor kvm`);
  if (!existsSync('/dev/kvm')) return 'tcg';
  const cache = path.join(path.dirname(image.kernel), `accel-${os.release()}`);
  const cached = existsSync(cache) ? readFileSync(cache, 'utf8').trim() : '';
  if (cached === 'tcg' || cached === 'kvm') return cached;
  const verdict: Accelerator = (await kvmBoots(image)) ? 'kvm' : 'tcg';
  writeFileSync(cache, `${verdict}\n`);
  return verdict;
}

/** Whether the image's kernel, under KVM, gets as far as running init. */
function kvmBoots(image: GuestImage): Promise<boolean> {
  return new Promise((resolve) => {
    const args = [...machineArgs('kvm', 128), '-kernel', image.kernel, '-initrd', image.initramfs];
    args.push('-append', kernelCommandLine([]));
    const child = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), KVM_PROBE_TIMEOUT_MS);
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('latin1');
      if (out.includes(BOOTED)) done(true);
    });
    child.on('error', () => done(false));
    child.on('exit', () => done(out.includes(BOOTED)));
  });
}

function machineArgs(accel: Accelerator, memoryMiB: number): string[] {
  return [
    ...['-accel', accel, '-m', String(memoryMiB), '-smp', '1'],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    // The console on stdio, without qemu's monitor multiplexed in (no Ctrl-A escapes) and without
    // turning a Ctrl-C into a signal to qemu.
    ...['-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console'],
  ];
}

/** Quiet (loglevel 1), so kernel messages do not interleave with the framed commands' output. */
function kernelCommandLine(addresses: string[]): string {
  const ip = addresses.length ? ` castnet.ip=${addresses.join(',')}` : '';
  return `console=ttyS0 quiet loglevel=1 panic=-1${ip}`;
}

/** Terminal control sequences (SeaBIOS clears the screen) and carriage returns. */
// eslint-disable-next-line no-control-regex
const CONTROL = /\x1b(\[[0-9;?]*[A-Za-z]|c)|\r/g;

interface PendingRun {
  id: string;
  cmd: string;
  output: string[];
  resolve: (output: string) => void;
  reject: (err: Error) => void;
}

interface PendingQmp {
  execute: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * A guest's serial console, driven over the stdin and stdout of a process: qemu's own (Guest), or
 * one that relays a console qemu serves elsewhere (`kubectl attach -i` to a pod whose qemu has its
 * console on stdio, as test/cluster/vm-guest.test.ts runs one). The host runs the guest's shell one
 * framed command at a time (run()) and reads every console line (onLine()).
 */
export class GuestConsole implements Disposable {
  protected child?: ChildProcess;
  private readonly lineListeners = new Set<(line: string) => void>();
  /** Told when the console's process exits: waits for console lines give up then. */
  private readonly exitListeners = new Set<(err: Error) => void>();
  private running?: PendingRun;
  /** run() calls, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private runSeq = 0;
  /** The last console lines, for error messages. */
  private readonly recent: string[] = [];
  protected exited?: string;
  private stderr = '';

  constructor(readonly name: string) {}

  /**
   * Drives the console over `child`'s stdio (spawned with stdin, stdout and stderr piped); `what`
   * names the process in the error its exit gives pending commands.
   */
  attach(child: ChildProcess, what = 'the console'): void {
    this.child = child;
    child.stderr?.on('data', (c: Buffer) => (this.stderr = (this.stderr + c.toString('utf8')).slice(-4000)));
    child.stdin!.on('error', () => undefined);
    let partial = '';
    child.stdout!.on('data', (c: Buffer) => {
      const lines = (partial + c.toString('latin1')).split('\n');
      partial = lines.pop()!;
      for (const raw of lines) this.line(raw.replace(CONTROL, ''));
    });
    child.on('error', (err) => this.failAll(`${what} did not start: ${err.message}`));
    child.on('exit', (code, signal) => {
      const err = this.stderr.trim();
      this.failAll(`${what} exited (${signal ?? `status ${code}`})${err ? `: ${err}` : ''}`);
    });
  }

  /** Every console line: background tools' output, framed commands' output, init's messages. */
  onLine(listener: (line: string) => void): Disposable {
    this.lineListeners.add(listener);
    return toDisposable(() => void this.lineListeners.delete(listener));
  }

  /**
   * Runs `cmd` with the guest's /bin/sh over the serial console and resolves with its output
   * (stdout and stderr, without the trailing newline); rejects naming the command and its exit
   * status. Commands run one at a time, in call order. `cmd` is one line; it runs in its own
   * `sh -c`, with stdin from /dev/null; a background job must send its output to /dev/console (see
   * background()).
   */
  run(cmd: string, timeoutMs = 30_000): Promise<string> {
    const next = this.queue.then(() => this.runNow(cmd, timeoutMs));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Starts `cmd` in the background in the guest, its output on the console; resolves with its pid. */
  async background(cmd: string): Promise<number> {
    const pid = await this.run(`${cmd} </dev/null >/dev/console 2>&1 & echo $!`);
    return Number(pid.trim());
  }

  /** Resolves with the first console line (from now on) that `match` accepts. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    if (this.exited) return Promise.reject(this.error(this.exited));
    return new Promise((resolve, reject) => {
      const settle = (err: Error | undefined, line = '') => {
        clearTimeout(timer);
        void sub.dispose();
        this.exitListeners.delete(onExit);
        if (err) reject(err);
        else resolve(line);
      };
      const timer = setTimeout(
        () => settle(this.error(`no console line as awaited within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onExit = (err: Error) => settle(err);
      this.exitListeners.add(onExit);
      const sub = this.onLine((l) => {
        if (match(l)) settle(undefined, l);
      });
    });
  }

  private runNow(cmd: string, timeoutMs: number): Promise<string> {
    if (this.exited) return Promise.reject(this.error(`cannot run \`${cmd}\`: ${this.exited}`));
    if (!this.child) return Promise.reject(this.error(`cannot run \`${cmd}\`: no console attached`));
    // The guest's shell evaluates a line at a time.
    if (/[\r\n]/.test(cmd)) return Promise.reject(this.error(`\`${cmd}\`: a command is one line (use ;)`));
    const id = `@cg${++this.runSeq}${randomBytes(3).toString('hex')}`;
    const quoted = `'${cmd.replaceAll("'", `'\\''`)}'`;
    // Every output line comes back prefixed with the id, then the status: other console lines
    // (background tools, the kernel) can interleave without being mistaken for the output.
    const line = `sh -c ${quoted} >/tmp/.cg-out 2>&1 </dev/null; s=$?; sed 's/^/${id}|/' /tmp/.cg-out; echo "${id}#$s"\n`;
    const child = this.child;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.running = undefined;
        reject(this.error(`\`${cmd}\` did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      this.running = {
        id,
        cmd,
        output: [],
        resolve: (out) => {
          clearTimeout(timer);
          resolve(out);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      child.stdin!.write(line);
    });
  }

  private line(text: string): void {
    this.recent.push(text);
    if (this.recent.length > 20) this.recent.shift();
    const r = this.running;
    if (r && text.startsWith(r.id)) {
      const rest = text.slice(r.id.length);
      if (rest.startsWith('|')) r.output.push(rest.slice(1));
      else if (rest.startsWith('#')) {
        this.running = undefined;
        const status = Number(rest.slice(1));
        const out = r.output.join('\n');
        if (status === 0) r.resolve(out);
        else r.reject(new Error(`guest ${this.name}: \`${r.cmd}\` exited with status ${status}: ${out}`));
      }
    }
    for (const l of this.lineListeners) l(text);
  }

  protected error(what: string): Error {
    const tail = this.recent.length ? `; last console lines: ${this.recent.slice(-5).join(' | ')}` : '';
    return new Error(`guest ${this.name}: ${what}${tail}`);
  }

  /** The console's process is gone: every pending command fails with why. */
  protected failAll(why: string): void {
    this.exited ??= why;
    const err = this.error(why);
    this.running?.reject(err);
    this.running = undefined;
    for (const l of [...this.exitListeners]) l(err);
  }

  /** Ends the console's process (SIGTERM, then SIGKILL if it lingers); the guest itself is not its. */
  async dispose(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    this.lineListeners.clear();
  }
}

/** What qemu's command line says about a guest (GuestSpec's parts that are not about the host). */
export interface QemuOptions {
  name: string;
  /** The tap qemu's virtio-net uses. */
  tap: string;
  mac: string;
  addresses: string[];
  memoryMiB: number;
  mtu?: number;
  /** The QMP socket qemu serves (none: no QMP). */
  qmpSocket?: string;
  /** As GuestSpec's incoming. */
  incoming?: string;
}

/**
 * qemu-system-x86_64's arguments for a guest of `image` under `accel`, its serial console on stdio:
 * what Guest.start() runs in a lab pod, and what a pod on the real cluster runs (test/cluster).
 */
export function qemuArgs(o: QemuOptions, accel: Accelerator, image: GuestImage): string[] {
  const nic = ['virtio-net-pci', 'netdev=net0', `mac=${o.mac}`];
  if (o.mtu) nic.push(`host_mtu=${o.mtu}`);
  const args = [
    ...['-name', `guest=${o.name}`],
    ...machineArgs(accel, o.memoryMiB),
    ...['-kernel', image.kernel, '-initrd', image.initramfs, '-append', kernelCommandLine(o.addresses)],
    ...['-netdev', `tap,id=net0,ifname=${o.tap},script=no,downscript=no`, '-device', nic.join(',')],
  ];
  if (o.qmpSocket) args.push('-qmp', `unix:${o.qmpSocket},server=on,wait=off`);
  if (o.incoming) args.push('-incoming', o.incoming.includes(':') ? o.incoming : `unix:${o.incoming}`);
  return args;
}

/** The line the guest's init prints once eth0 is configured, just before its shell starts. */
export const GUEST_READY = READY;

export class Guest extends GuestConsole {
  readonly qmpSocket: string;
  /** What start() ran qemu with. */
  accelerator?: Accelerator;
  private qmpConn?: net.Socket;
  private readonly eventListeners = new Set<(event: QmpEvent) => void>();
  private readonly qmpPending = new Map<number, PendingQmp>();
  private qmpSeq = 0;
  private disposed = false;

  constructor(readonly spec: GuestSpec) {
    super(spec.name);
    this.qmpSocket = path.join(spec.workDir, 'qmp.sock');
  }

  /**
   * Starts qemu in the spec's namespace and resolves once the guest's shell answers (with
   * `incoming`: once QMP answers, the guest waiting paused for its migration stream).
   */
  async start(): Promise<void> {
    const { spec } = this;
    const image = spec.image ?? guestImage();
    const accel = await detectAccelerator(image);
    this.accelerator = accel;
    await mkdir(spec.workDir, { recursive: true });
    const args = [
      ...['netns', 'exec', spec.netns, QEMU],
      ...qemuArgs({ ...spec, qmpSocket: this.qmpSocket }, accel, image),
    ];
    const ready = spec.incoming ? undefined : this.waitForLine((l) => l.startsWith(READY), BOOT_TIMEOUT_MS);
    ready?.catch(() => undefined); // awaited below, unless QMP fails first
    this.attach(spawn('ip', args, { stdio: ['pipe', 'pipe', 'pipe'] }), 'qemu');
    await this.connectQmp();
    await this.qmp('qmp_capabilities');
    if (ready) {
      await ready;
      await this.run('true');
    }
  }

  /** Every QMP event qemu sends. */
  onEvent(listener: (event: QmpEvent) => void): Disposable {
    this.eventListeners.add(listener);
    return toDisposable(() => void this.eventListeners.delete(listener));
  }

  /** Runs a QMP command; rejects with QMP's error class and description. */
  qmp(execute: string, args?: object): Promise<unknown> {
    const conn = this.qmpConn;
    if (!conn) return Promise.reject(this.error(`QMP ${execute}: not connected`));
    const id = ++this.qmpSeq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.qmpPending.delete(id);
        reject(this.error(`QMP ${execute}: no answer within ${QMP_TIMEOUT_MS} ms`));
      }, QMP_TIMEOUT_MS);
      this.qmpPending.set(id, {
        execute,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      conn.write(JSON.stringify({ execute, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  /** Connects to qemu's QMP socket, which appears shortly after qemu starts. */
  private async connectQmp(): Promise<void> {
    const deadline = Date.now() + QMP_TIMEOUT_MS;
    for (;;) {
      if (this.exited) throw this.error(this.exited);
      try {
        this.qmpConn = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(this.qmpSocket);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw this.error(`QMP socket ${this.qmpSocket}: ${errorMessage(err)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const conn = this.qmpConn;
    conn.on('error', () => undefined);
    let partial = '';
    conn.on('data', (c: Buffer) => {
      const lines = (partial + c.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.trim()) this.qmpMessage(JSON.parse(l) as Record<string, unknown>);
    });
  }

  private qmpMessage(m: Record<string, unknown>): void {
    if (typeof m.event === 'string') {
      for (const l of this.eventListeners) l(m as unknown as QmpEvent);
      return;
    }
    const pending = typeof m.id === 'number' ? this.qmpPending.get(m.id) : undefined;
    if (!pending) return; // the greeting
    this.qmpPending.delete(m.id as number);
    if ('error' in m) {
      const e = m.error as { class?: string; desc?: string };
      pending.reject(new Error(`guest ${this.name}: QMP ${pending.execute}: ${e.class}: ${e.desc}`));
    } else pending.resolve(m.return);
  }

  /** qemu is gone: every pending command and QMP call fails with why. */
  protected override failAll(why: string): void {
    super.failAll(why);
    const err = this.error(why);
    for (const p of this.qmpPending.values()) p.reject(err);
    this.qmpPending.clear();
  }

  /** Quits qemu (QMP quit, then SIGKILL if it lingers) and removes the work directory. */
  override async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const qemu = this.child;
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      const exited = new Promise<void>((r) => qemu.once('exit', () => r()));
      // A qemu that does not answer quit, or does not exit soon after, is killed.
      void this.qmp('quit').catch(() => undefined);
      const timer = setTimeout(() => qemu.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    this.qmpConn?.destroy();
    this.eventListeners.clear();
    await super.dispose();
    await rm(this.spec.workDir, { recursive: true, force: true });
  }
}
