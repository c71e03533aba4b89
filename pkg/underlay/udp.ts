// The UDP transport between node agents: one socket bound to the node's underlay address, sending
// and receiving datagrams in batches (sendmmsg/recvmmsg), readiness from Node's own event loop.
// See docs/dataplane-io.md for why this and not node:dgram.
import type { Disposable } from '../base/lifecycle.js';
import koffi from 'koffi';
import { MsgVec } from '../packet/msgvec.js';
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  EINTR,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  MSG_DONTWAIT,
  MSG_TRUNC,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from '../sys/constants.js';
import { check, errno, inNetns, libc } from '../sys/libc.js';
import { setIntOption, setSocketBuffer } from '../sys/sockopt.js';
import { ipFamily, type Family } from '../netaddr/ip.js';
import { SOCKADDR_IN6_LEN, decodeSockaddr, encodeSockaddr } from './sockaddr.js';

/** Largest UDP payload. */
export const MAX_DATAGRAM = 65507;
const SOCKET_BUFFER = 4 << 20;
const MAX_STRANGERS = 1024;

/** A remote agent's underlay endpoint, with its socket address encoded once. Get one from peer(). */
export interface Peer {
  readonly address: string;
  readonly port: number;
  readonly sockaddr: Buffer;
}

export interface Datagram {
  /** Interned: the same object for every datagram from one (address, port). */
  from: Peer;
  /** A view into the receive ring, valid only until the handler returns: copy what you keep. */
  data: Buffer;
}

export interface OutDatagram {
  to: Peer;
  data: Uint8Array;
}

export interface UnderlayCounters {
  received: number;
  sent: number;
  /** Datagrams not sent: the socket's queue was full (EAGAIN/ENOBUFS), or too large. */
  sendDropped: number;
  /** Received datagrams larger than MAX_DATAGRAM, discarded. */
  truncated: number;
  /** Other failed receive or send calls. */
  errors: number;
}

export interface UnderlayOptions {
  /** The node's underlay address to bind, IPv4 or IPv6. */
  address: string;
  /** UDP port; 0 picks a free one (see `port` after opening). */
  port: number;
  /** Network namespace to open the socket in (default: the agent's own). */
  netns?: string;
  /** Datagrams per recvmmsg/sendmmsg call (default 64). */
  batchSize?: number;
  /**
   * Share the port with other sockets that ask for it too (SO_REUSEADDR), e.g. a wildcard receiver
   * beside an application's own socket; an IPv6 socket then takes IPv6 only, so a wildcard IPv4 and
   * IPv6 pair never both receive one datagram.
   */
  reuseAddress?: boolean;
}

interface PollHandle {
  close(): void;
}

type DatagramHandler = (batch: Datagram[]) => void;

export class UnderlaySocket implements Disposable {
  readonly family: Family;
  private readonly rx: MsgVec;
  private readonly tx: MsgVec;
  private readonly poll: PollHandle;
  private readonly peers = new Map<string, Peer>();
  private readonly strangers = new Map<string, Peer>();
  private readonly c: UnderlayCounters = { received: 0, sent: 0, sendDropped: 0, truncated: 0, errors: 0 };
  private handler: DatagramHandler = () => {};
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly address: string,
    readonly port: number,
    batchSize: number,
  ) {
    this.family = ipFamily(address);
    this.rx = new MsgVec(batchSize, MAX_DATAGRAM, SOCKADDR_IN6_LEN);
    this.tx = new MsgVec(batchSize, MAX_DATAGRAM, SOCKADDR_IN6_LEN);
    this.poll = (koffi.node.poll as unknown as (fd: number, o: object, cb: () => void) => PollHandle)(
      fd,
      { readable: true },
      () => this.drain(),
    );
  }

  /** Binds a UDP socket to (address, port). */
  static open(opts: UnderlayOptions): UnderlaySocket {
    const family = ipFamily(opts.address, 'underlay address');
    const sa = encodeSockaddr(opts.address, opts.port, 'underlay address');
    const c = libc();
    const where = `underlay ${family === 6 ? `[${opts.address}]` : opts.address}:${opts.port}`;
    const open = () => {
      const fd = check(
        `socket for ${where}`,
        c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
      );
      try {
        setSocketBuffer(fd, 'rcv', SOCKET_BUFFER);
        setSocketBuffer(fd, 'snd', SOCKET_BUFFER);
        if (opts.reuseAddress) {
          setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, 'SO_REUSEADDR');
          if (family === 6) setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, 'IPV6_V6ONLY');
        }
        check(`bind ${where}`, c.bind(fd, sa, sa.length));
        const bound = Buffer.alloc(SOCKADDR_IN6_LEN);
        check('getsockname', c.getsockname(fd, bound, new Uint32Array([bound.length])));
        return { fd, port: decodeSockaddr(bound)!.port };
      } catch (err) {
        c.close(fd);
        throw err;
      }
    };
    const { fd, port } = opts.netns ? inNetns(opts.netns, open) : open();
    return new UnderlaySocket(fd, opts.address, port, opts.batchSize ?? 64);
  }

  /** The peer for (address, port), validated and interned; datagrams from it carry the same object. */
  peer(address: string, port: number): Peer {
    if (ipFamily(address, 'peer address') !== this.family) {
      throw new Error(
        `peer address ${JSON.stringify(address)}: not IPv${this.family} like the underlay socket`,
      );
    }
    const sockaddr = encodeSockaddr(address, port, 'peer address');
    const key = this.rawKey(sockaddr);
    let p = this.peers.get(key);
    if (!p) {
      p = { address: decodeSockaddr(sockaddr)!.address, port, sockaddr };
      this.peers.set(key, p);
      this.strangers.delete(key);
    }
    return p;
  }

  onDatagrams(handler: DatagramHandler): void {
    this.handler = handler;
  }

  /** Sends datagrams, batched; returns how many the kernel took (the rest are counted). */
  send(datagrams: readonly OutDatagram[]): number {
    if (this.closed) throw new Error('underlay socket is closed');
    const tx = this.tx;
    let sent = 0;
    let i = 0;
    while (i < datagrams.length) {
      let n = 0;
      while (n < tx.capacity && i < datagrams.length) {
        const d = datagrams[i++];
        if (!tx.fill(n, d.data)) {
          this.c.sendDropped++;
          continue;
        }
        tx.setName(n, d.to.sockaddr);
        n++;
      }
      sent += tx.send(this.fd, n);
      this.c.sendDropped += tx.sendDropped;
      this.c.errors += tx.sendErrors;
    }
    this.c.sent += sent;
    return sent;
  }

  /** Stops interning `p` (a node that left): memory follows the directory, not its history. */
  forget(p: Peer): void {
    const key = this.rawKey(p.sockaddr);
    if (this.peers.get(key) === p) this.peers.delete(key);
  }

  /** Peers interned by peer() and not forgotten. */
  get internedPeers(): number {
    return this.peers.size;
  }

  counters(): UnderlayCounters {
    return { ...this.c };
  }

  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.poll.close();
    libc().close(this.fd);
    this.rx.free();
    this.tx.free();
  }

  private rawKey(sa: Uint8Array): string {
    const len = this.family === 4 ? 8 : 24;
    return Buffer.from(sa.buffer, sa.byteOffset, len).toString('latin1');
  }

  private fromName(sa: Buffer): Peer {
    const key = this.rawKey(sa);
    const known = this.peers.get(key) ?? this.strangers.get(key);
    if (known) return known;
    // Unknown senders are not interned for good: a spoofing flood must not grow memory.
    if (this.strangers.size >= MAX_STRANGERS) this.strangers.clear();
    const { address, port } = decodeSockaddr(sa)!;
    const p = { address, port, sockaddr: Buffer.from(sa.subarray(0, this.family === 4 ? 16 : 28)) };
    this.strangers.set(key, p);
    return p;
  }

  private drain(): void {
    if (this.closed) return;
    const rx = this.rx;
    for (let round = 0; round < 8; round++) {
      rx.resetForReceive(rx.capacity);
      const n = libc().recvmmsg(this.fd, rx.base, rx.capacity, MSG_DONTWAIT, 0);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        if (e !== EAGAIN) this.c.errors++;
        return;
      }
      const batch: Datagram[] = [];
      for (let i = 0; i < n; i++) {
        if (rx.msgFlags(i) & MSG_TRUNC) {
          this.c.truncated++;
          continue;
        }
        batch.push({ from: this.fromName(rx.name(i)), data: rx.slot(i).subarray(0, rx.msgLen(i)) });
      }
      this.c.received += batch.length;
      if (batch.length > 0) this.handler(batch);
      if (n < rx.capacity || this.closed) return;
    }
  }
}
