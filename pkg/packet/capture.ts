// The agent's frame I/O on endpoint interfaces: capture multicast/broadcast frames from many
// host-side veths and inject frames into them, in batches.
//
// Threading: everything runs on the calling (main) thread. Each socket is watched by a libuv poll
// handle on Node's own event loop (koffi.node.poll), and a readiness event drains the socket with
// recvmmsg; injection is a synchronous sendmmsg on a non-blocking socket. Both calls cost about a
// microsecond, and a wakeup costs no thread hop (see docs/dataplane-io.md for the measurements
// behind this choice).
import type { Disposable } from '../base/lifecycle.js';
import koffi from 'koffi';
import { EAGAIN, EINTR, MSG_DONTWAIT, MSG_TRUNC, PACKET_AUXDATA, SOL_PACKET } from '../sys/constants.js';
import { errno, inNetns, libc, SysError } from '../sys/libc.js';
import { MsgVec } from './msgvec.js';
import { DEFAULT_CAPTURE_RCVBUF, openCaptureSocket, readPacketStats } from './socket.js';
import { VNET_HDR_LEN } from '../frame/vnet.js';
import { withVlanTag } from './vlan.js';
import { ETH_P_8021Q } from '../frame/ethernet.js';
import { errorMessage } from '../base/errors.js';

// struct cmsghdr (16 bytes) + struct tpacket_auxdata (20), as PACKET_AUXDATA delivers it.
const AUXDATA_CONTROL = 48;
const CMSG_DATA = 16;
const TP_STATUS_VLAN_VALID = 0x10;
const TP_STATUS_VLAN_TPID_VALID = 0x40;

/** Largest frame handled: a 64 KiB GSO frame plus its virtio_net_hdr. */
export const MAX_FRAME = 65535 + VNET_HDR_LEN;

export interface FrameBatch<T> {
  tag: T;
  ifindex: number;
  /**
   * Frames as received, each starting with its virtio_net_hdr. They are views into the receive
   * ring, valid only until the handler returns: copy what you keep.
   */
  frames: Buffer[];
}

export interface CaptureCounters {
  /** Frames handed to the handler. */
  received: number;
  /** Frames the kernel dropped because we did not read fast enough (PACKET_STATISTICS). */
  dropped: number;
  /** Frames longer than MAX_FRAME, discarded. */
  truncated: number;
  /** Frames injected into the interface. */
  injected: number;
  /** Frames not injected: the peer's queue was full (ENOBUFS) or the frame was malformed. */
  injectDropped: number;
  /** Failed receive or send calls (other than "nothing to read"). */
  errors: number;
}

export interface CaptureSetOptions {
  /** Network namespace holding the interfaces (default: the agent's own). */
  netns?: string;
  /** Frames per recvmmsg/sendmmsg call (default 64). */
  batchSize?: number;
  /**
   * Bytes the kernel may queue per interface while the agent is busy (default 16 MiB); beyond it,
   * frames are dropped and counted. It absorbs main-thread stalls.
   */
  rcvbuf?: number;
  /** Batches drained from one socket per readiness event, so one busy endpoint cannot starve the rest. */
  maxBatchesPerWakeup?: number;
}

interface PollHandle {
  start(opts: { readable: boolean }, cb: (status: number) => void): void;
  close(): void;
}

interface Capture<T> {
  tag: T;
  ifindex: number;
  fd: number;
  poll: PollHandle;
  counters: CaptureCounters;
  /** Frames queued for injection, sent by flush(). */
  pending: Uint8Array[];
}

function zeroCounters(): CaptureCounters {
  return { received: 0, dropped: 0, truncated: 0, injected: 0, injectDropped: 0, errors: 0 };
}

type FrameHandler<T> = (batch: FrameBatch<T>) => void;

export class CaptureSet<T = string> implements Disposable {
  private readonly captures = new Map<number, Capture<T>>();
  /** Interfaces with queued frames, in queueing order. */
  private readonly dirty: Capture<T>[] = [];
  private readonly rx: MsgVec;
  private readonly tx: MsgVec;
  private readonly netns?: string;
  private readonly maxBatches: number;
  private readonly rcvbuf: number;
  private handler: FrameHandler<T> = () => {};
  private closed = false;
  /** Counters of interfaces already removed, so totals never go backwards. */
  private readonly retired = zeroCounters();

  constructor(opts: CaptureSetOptions = {}) {
    this.netns = opts.netns;
    const batch = opts.batchSize ?? 64;
    this.maxBatches = opts.maxBatchesPerWakeup ?? 8;
    this.rcvbuf = opts.rcvbuf ?? DEFAULT_CAPTURE_RCVBUF;
    // One receive and one send vector serve every interface: all I/O runs on this thread.
    this.rx = new MsgVec(batch, MAX_FRAME, 0, AUXDATA_CONTROL);
    this.tx = new MsgVec(batch, MAX_FRAME);
  }

  onFrames(handler: FrameHandler<T>): void {
    this.handler = handler;
  }

  /** Resolves an interface name (in this set's namespace) or checks an ifindex. */
  ifindexOf(iface: string | number): number {
    if (typeof iface === 'number') {
      if (!Number.isInteger(iface) || iface < 1)
        throw new Error(`ifindex ${iface}: must be a positive integer`);
      return iface;
    }
    const idx = this.inNs(() => libc().if_nametoindex(iface));
    if (!idx)
      throw new Error(
        `interface ${JSON.stringify(iface)}: not found${this.netns ? ` in ${this.netns}` : ''}`,
      );
    return idx;
  }

  /**
   * Starts capturing on an interface and makes it a target for inject(). Idempotent for the same
   * interface; a new tag replaces the old one. Returns the ifindex.
   */
  add(iface: string | number, tag: T): number {
    if (this.closed) throw new Error('capture set is closed');
    const ifindex = this.ifindexOf(iface);
    const existing = this.captures.get(ifindex);
    if (existing) {
      existing.tag = tag;
      return ifindex;
    }
    let fd: number;
    try {
      fd = this.inNs(() => openCaptureSocket(ifindex, this.rcvbuf));
    } catch (err) {
      throw new Error(`failed to capture on interface ${JSON.stringify(iface)}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const poll = (koffi.node.poll as unknown as (fd: number, o: object, cb: () => void) => PollHandle)(
      fd,
      { readable: true },
      () => this.drain(capture),
    );
    const capture: Capture<T> = { tag, ifindex, fd, poll, counters: zeroCounters(), pending: [] };
    this.captures.set(ifindex, capture);
    return ifindex;
  }

  /** Stops capturing on an interface and closes its socket. False if it was not added. */
  remove(iface: string | number): boolean {
    const ifindex = typeof iface === 'number' ? iface : this.ifindexOf(iface);
    const capture = this.captures.get(ifindex);
    if (!capture) return false;
    this.captures.delete(ifindex);
    capture.counters.injectDropped += capture.pending.length;
    capture.pending.length = 0;
    this.collectStats(capture);
    capture.poll.close();
    libc().close(capture.fd);
    for (const k of Object.keys(this.retired) as (keyof CaptureCounters)[]) {
      this.retired[k] += capture.counters[k];
    }
    return true;
  }

  has(ifindex: number): boolean {
    return this.captures.has(ifindex);
  }

  /** The interfaces in the set, as ifindex → tag. */
  interfaces(): Map<number, T> {
    return new Map([...this.captures].map(([i, c]) => [i, c.tag]));
  }

  /**
   * Injects frames (each starting with a virtio_net_hdr) into an interface of the set, so they
   * arrive at its peer as if sent to it. Returns how many the kernel took; the rest are counted.
   */
  inject(ifindex: number, frames: readonly Uint8Array[]): number {
    const capture = this.captures.get(ifindex);
    if (!capture) throw new Error(`inject into ifindex ${ifindex}: interface not in the capture set`);
    const c = capture.counters;
    const tx = this.tx;
    let sent = 0;
    let i = 0;
    while (i < frames.length) {
      let n = 0;
      while (n < tx.capacity && i < frames.length) {
        const f = frames[i++];
        if (f.length <= VNET_HDR_LEN || !tx.fill(n, f)) {
          c.injectDropped++;
          continue;
        }
        n++;
      }
      sent += tx.send(capture.fd, n);
      c.injectDropped += tx.sendDropped;
      c.errors += tx.sendErrors;
    }
    c.injected += sent;
    return sent;
  }

  /**
   * Queues one frame (starting with a virtio_net_hdr) for injection into an interface of the set.
   * Queued frames go out in one sendmmsg run per interface at flush(), which the set calls itself
   * after each onFrames handler; call it yourself when queueing from anywhere else (an underlay
   * handler, a timer). A queued frame must stay valid until then: borrowed frames are, within
   * their handler.
   */
  queue(ifindex: number, frame: Uint8Array): void {
    const capture = this.captures.get(ifindex);
    if (!capture) throw new Error(`inject into ifindex ${ifindex}: interface not in the capture set`);
    if (capture.pending.length === 0) this.dirty.push(capture);
    capture.pending.push(frame);
  }

  /** Injects everything queued. Returns how many frames the kernel took. */
  flush(): number {
    let sent = 0;
    for (const capture of this.dirty) {
      if (this.captures.get(capture.ifindex) === capture)
        sent += this.inject(capture.ifindex, capture.pending);
      capture.pending.length = 0;
    }
    this.dirty.length = 0;
    return sent;
  }

  /** Counters summed over all interfaces, past and present. */
  counters(): CaptureCounters {
    const total = { ...this.retired };
    for (const capture of this.captures.values()) {
      this.collectStats(capture);
      for (const k of Object.keys(total) as (keyof CaptureCounters)[]) total[k] += capture.counters[k];
    }
    return total;
  }

  /** One interface's counters, or undefined if it is not in the set. */
  interfaceCounters(ifindex: number): CaptureCounters | undefined {
    const capture = this.captures.get(ifindex);
    if (!capture) return undefined;
    this.collectStats(capture);
    return { ...capture.counters };
  }

  dispose(): void {
    if (this.closed) return;
    for (const ifindex of [...this.captures.keys()]) this.remove(ifindex);
    this.closed = true;
    this.rx.free();
    this.tx.free();
  }

  private drain(capture: Capture<T>): void {
    // A removed interface's handle may still deliver one queued event.
    if (this.captures.get(capture.ifindex) !== capture) return;
    const rx = this.rx;
    const c = capture.counters;
    for (let round = 0; round < this.maxBatches; round++) {
      rx.resetForReceive(rx.capacity);
      const n = libc().recvmmsg(capture.fd, rx.base, rx.capacity, MSG_DONTWAIT, 0);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        // ENETDOWN and the like: the interface went down or away; the endpoint owner removes it.
        if (e !== EAGAIN) c.errors++;
        return;
      }
      const frames: Buffer[] = [];
      for (let i = 0; i < n; i++) {
        if (rx.msgFlags(i) & MSG_TRUNC) {
          c.truncated++;
          continue;
        }
        const frame = rx.slot(i).subarray(0, rx.msgLen(i));
        frames.push(this.vlanTagged(i) ? this.retag(i, frame) : frame);
      }
      c.received += frames.length;
      if (frames.length > 0) {
        try {
          this.handler({ tag: capture.tag, ifindex: capture.ifindex, frames });
        } finally {
          // Before the next recvmmsg reuses the ring the queued frames may point into.
          if (this.dirty.length) this.flush();
        }
      }
      if (n < rx.capacity || this.captures.get(capture.ifindex) !== capture) return;
    }
  }

  /** Whether message i came with a VLAN tag the kernel took out of the frame. */
  private vlanTagged(i: number): boolean {
    const rx = this.rx;
    return (
      rx.controlLen(i) >= CMSG_DATA + 20 &&
      rx.controlWord(i, 8) === SOL_PACKET &&
      rx.controlWord(i, 12) === PACKET_AUXDATA &&
      (rx.controlWord(i, CMSG_DATA) & TP_STATUS_VLAN_VALID) !== 0
    );
  }

  private retag(i: number, frame: Buffer): Buffer {
    const status = this.rx.controlWord(i, CMSG_DATA);
    const vlan = this.rx.controlWord(i, CMSG_DATA + 16); // tp_vlan_tci | tp_vlan_tpid << 16
    const tpid = status & TP_STATUS_VLAN_TPID_VALID ? vlan >>> 16 : ETH_P_8021Q;
    return withVlanTag(frame, vlan & 0xffff, tpid);
  }

  private collectStats(capture: Capture<T>): void {
    try {
      capture.counters.dropped += readPacketStats(capture.fd).drops;
    } catch (err) {
      if (!(err instanceof SysError)) throw err;
      capture.counters.errors++;
    }
  }

  private inNs<R>(fn: () => R): R {
    return this.netns ? inNetns(this.netns, fn) : fn();
  }
}
