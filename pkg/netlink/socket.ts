// A blocking NETLINK_ROUTE socket: one request at a time, replies matched by sequence number.
// Blocking is deliberate: rtnetlink answers in microseconds, and a synchronous socket can be opened
// inside another network namespace with inNetns().
import { AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW, SOL_NETLINK } from '../sys/constants.js';
import { check, errno, inNetns, libc, sendtoAsync, SysError } from '../sys/libc.js';
import { setReceiveTimeout, trySetIntOption } from '../sys/sockopt.js';
import {
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_ROUTE,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
} from './constants.js';
import { encodeMessage, NlMessage, parseError, parseMessages } from './message.js';

const RECV_TIMEOUT_S = 10;
const RECV_BUFFER = 1 << 18;

/** A failed netlink request: errno plus the kernel's extended-ACK text when it gave one. */
export class NetlinkError extends SysError {
  constructor(
    call: string,
    errnum: number,
    public readonly kernelMessage?: string,
  ) {
    super(call, errnum);
    this.name = 'NetlinkError';
    if (kernelMessage) this.message += ` (${kernelMessage})`;
  }
}

export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly rbuf = Buffer.alloc(RECV_BUFFER);

  private constructor(private fd: number) {}

  /** Opens a socket in the current network namespace, or in the one at `netnsPath`. */
  static open(netnsPath?: string): NetlinkSocket {
    const make = (): number => {
      const c = libc();
      const fd = check('socket(AF_NETLINK)', c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
      try {
        // Extended ACKs carry the kernel's reason text; capping keeps errors small. Both are best-effort.
        trySetIntOption(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
        trySetIntOption(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
        setReceiveTimeout(fd, RECV_TIMEOUT_S);
      } catch (err) {
        c.close(fd);
        throw err;
      }
      return fd;
    };
    return new NetlinkSocket(netnsPath ? inNetns(netnsPath, make) : make());
  }

  dispose(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }

  /** Sends a request and waits for its ACK. `what` names the operation in errors. */
  request(what: string, type: number, flags: number, body: Buffer): void {
    this.exchange(what, type, NLM_F_REQUEST | NLM_F_ACK | flags, body);
  }

  /** Sends a dump request and returns every reply message's payload. */
  dump(what: string, type: number, body: Buffer): NlMessage[] {
    return this.exchange(what, type, NLM_F_REQUEST | NLM_F_DUMP, body);
  }

  /** Sends a request that answers with one message (e.g. RTM_GETLINK by name). */
  get(what: string, type: number, body: Buffer): NlMessage | undefined {
    return this.exchange(what, type, NLM_F_REQUEST, body, true)[0];
  }

  /**
   * Like request(), but the kernel does the work on a worker thread, so the event loop is not held.
   * One at a time per socket: a socket must not have another request in flight meanwhile.
   */
  async requestAsync(what: string, type: number, flags: number, body: Buffer): Promise<void> {
    const seq = this.nextSeq(what);
    const msg = encodeMessage({ type, flags: NLM_F_REQUEST | NLM_F_ACK | flags, seq, pid: 0 }, body);
    if ((await sendtoAsync(this.fd, msg)) < 0)
      throw new Error(`${what}: sendto on the netlink socket failed`);
    this.receive(what, seq, false);
  }

  private nextSeq(what: string): number {
    if (this.fd < 0) throw new Error(`${what}: netlink socket is closed`);
    return (this.seq = (this.seq + 1) & 0x7fffffff);
  }

  private exchange(what: string, type: number, flags: number, body: Buffer, single = false): NlMessage[] {
    const seq = this.nextSeq(what);
    const msg = encodeMessage({ type, flags, seq, pid: 0 }, body);
    const sent = libc().sendto(this.fd, msg, msg.length, 0, null, 0);
    if (sent < 0) throw new SysError(`${what}: sendto`, errno());
    return this.receive(what, seq, single);
  }

  /** Reads replies to request `seq` until its ACK, error or end of dump. */
  private receive(what: string, seq: number, single: boolean): NlMessage[] {
    const c = libc();
    const out: NlMessage[] = [];
    for (;;) {
      const n = c.recv(this.fd, this.rbuf, this.rbuf.length, 0);
      if (n < 0) throw new SysError(`${what}: recv`, errno());
      for (const m of parseMessages(Buffer.from(this.rbuf.subarray(0, n)))) {
        if (m.seq !== seq) continue; // a late answer to an earlier, abandoned request
        if (m.type === NLMSG_ERROR) {
          const e = parseError(m);
          if (e.errno !== 0) throw new NetlinkError(what, e.errno, e.message);
          return out;
        }
        if (m.type === NLMSG_DONE) {
          const err = m.payload.length >= 4 ? -m.payload.readInt32LE(0) : 0;
          if (err > 0) throw new NetlinkError(what, err);
          return out;
        }
        out.push(m);
        if (single) return out;
      }
    }
  }
}
