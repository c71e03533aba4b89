// A vector of `struct mmsghdr` in stable native memory, for recvmmsg/sendmmsg. Each message has one
// iovec over its own slot and, optionally, its own socket address. Built once; a batch call only
// rewrites lengths, so a syscall moves up to `capacity` frames with no allocation.
import koffi from 'koffi';
import { EAGAIN, EINTR, ENOBUFS } from '../sys/constants.js';
import { errno, libc } from '../sys/libc.js';

// x86_64/aarch64 Linux layouts.
const MMSGHDR_SIZE = 64; // struct msghdr (56) + unsigned msg_len + padding
const MSG_NAMELEN = 8; // socklen_t msg_namelen
const MSG_CONTROL = 32; // void *msg_control
const MSG_CONTROLLEN = 40; // size_t msg_controllen
const MSG_FLAGS = 48; // int msg_flags
const MSG_LEN = 56; // unsigned int msg_len
const IOVEC_SIZE = 16;
const IOV_LEN = 8;

function align16(n: number): number {
  return (n + 15) & ~15;
}

export class MsgVec {
  /** Address of mmsghdr[0], for recvmmsg/sendmmsg. */
  readonly base: number;
  private readonly ptr: unknown;
  private readonly mem: Buffer;
  private readonly u32: Uint32Array;
  private readonly slotOffset: number;
  private readonly slotStride: number;
  private readonly nameOffset: number;
  private readonly nameStride: number;
  private readonly controlOffset: number;
  private readonly controlStride: number;
  private readonly slots: Buffer[] = [];
  private freed = false;
  /** Messages the last send() skipped because a queue was full (EAGAIN, ENOBUFS). */
  sendDropped = 0;
  /** Messages the last send() skipped for any other error. */
  sendErrors = 0;

  constructor(
    readonly capacity: number,
    readonly slotSize: number,
    readonly nameSize = 0,
    readonly controlSize = 0,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1024) {
      throw new Error(`batch capacity ${capacity}: must be an integer in 1..1024`);
    }
    if (!Number.isInteger(slotSize) || slotSize < 64) {
      throw new Error(`slot size ${slotSize}: must be an integer of at least 64 bytes`);
    }
    const iovOffset = capacity * MMSGHDR_SIZE;
    this.nameStride = align16(nameSize);
    this.nameOffset = iovOffset + capacity * IOVEC_SIZE;
    this.controlStride = align16(controlSize);
    this.controlOffset = this.nameOffset + capacity * this.nameStride;
    this.slotStride = align16(slotSize);
    this.slotOffset = this.controlOffset + capacity * this.controlStride;
    const total = this.slotOffset + capacity * this.slotStride;
    this.ptr = koffi.alloc('uint8_t', total);
    this.base = Number(koffi.address(this.ptr));
    const ab = koffi.view(this.ptr, total);
    this.mem = Buffer.from(ab);
    this.mem.fill(0, 0, this.slotOffset);
    this.u32 = new Uint32Array(ab, 0, this.slotOffset / 4);
    for (let i = 0; i < capacity; i++) {
      const hdr = i * MMSGHDR_SIZE;
      const iov = iovOffset + i * IOVEC_SIZE;
      const slot = this.slotOffset + i * this.slotStride;
      if (nameSize > 0) this.writePtr(hdr, this.base + this.nameOffset + i * this.nameStride);
      this.u32[(hdr + MSG_NAMELEN) >> 2] = nameSize;
      if (controlSize > 0)
        this.writePtr(hdr + MSG_CONTROL, this.base + this.controlOffset + i * this.controlStride);
      this.u32[(hdr + MSG_CONTROLLEN) >> 2] = controlSize;
      this.writePtr(hdr + 16, this.base + iov); // msg_iov
      this.u32[(hdr + 24) >> 2] = 1; // msg_iovlen
      this.writePtr(iov, this.base + slot); // iov_base
      this.u32[(iov + IOV_LEN) >> 2] = slotSize;
      this.slots.push(this.mem.subarray(slot, slot + slotSize));
    }
  }

  private writePtr(off: number, addr: number): void {
    this.u32[off >> 2] = addr % 0x1_0000_0000;
    this.u32[(off >> 2) + 1] = Math.floor(addr / 0x1_0000_0000);
  }

  /** Address of mmsghdr[i], to start a syscall mid-vector. */
  at(i: number): number {
    return this.base + i * MMSGHDR_SIZE;
  }

  /** Slot i's whole buffer (a view into native memory, overwritten by the next batch). */
  slot(i: number): Buffer {
    return this.slots[i];
  }

  /** Slot i's socket address buffer (nameSize bytes). */
  name(i: number): Buffer {
    const off = this.nameOffset + i * this.nameStride;
    return this.mem.subarray(off, off + this.nameSize);
  }

  /** Before a receive: every name and control buffer is offered whole again (the kernel shrinks them). */
  resetForReceive(count: number): void {
    const u32 = this.u32;
    if (this.nameSize > 0) {
      for (let i = 0; i < count; i++) u32[(i * MMSGHDR_SIZE + MSG_NAMELEN) >> 2] = this.nameSize;
    }
    if (this.controlSize > 0) {
      for (let i = 0; i < count; i++) u32[(i * MMSGHDR_SIZE + MSG_CONTROLLEN) >> 2] = this.controlSize;
    }
  }

  /** Length of the control data the kernel wrote for message i. */
  controlLen(i: number): number {
    return this.u32[(i * MMSGHDR_SIZE + MSG_CONTROLLEN) >> 2];
  }

  /** The 32-bit word at `byteOffset` (a multiple of 4) in message i's control buffer. */
  controlWord(i: number, byteOffset: number): number {
    return this.u32[(this.controlOffset + i * this.controlStride + byteOffset) >> 2];
  }

  /** Bytes the kernel moved for message i. */
  msgLen(i: number): number {
    return this.u32[(i * MMSGHDR_SIZE + MSG_LEN) >> 2];
  }

  msgFlags(i: number): number {
    return this.u32[(i * MMSGHDR_SIZE + MSG_FLAGS) >> 2];
  }

  /** Length of the socket address the kernel wrote for message i. */
  nameLen(i: number): number {
    return this.u32[(i * MMSGHDR_SIZE + MSG_NAMELEN) >> 2];
  }

  /** Copies `data` into slot i and sets the iovec length; false when it does not fit. */
  fill(i: number, data: Uint8Array): boolean {
    if (data.length > this.slotSize) return false;
    this.slots[i].set(data);
    this.u32[(this.capacity * MMSGHDR_SIZE + i * IOVEC_SIZE + IOV_LEN) >> 2] = data.length;
    return true;
  }

  /** Sets message i's socket address from pre-encoded bytes. */
  setName(i: number, sockaddr: Uint8Array): void {
    this.mem.set(sockaddr, this.nameOffset + i * this.nameStride);
    this.u32[(i * MMSGHDR_SIZE + MSG_NAMELEN) >> 2] = sockaddr.length;
  }

  /**
   * Sends messages 0..count-1 on `fd` with sendmmsg, resuming after a partial send. A message the
   * kernel refuses is skipped and counted in sendDropped or sendErrors. Returns how many were sent.
   */
  send(fd: number, count: number): number {
    this.sendDropped = 0;
    this.sendErrors = 0;
    let off = 0;
    let sent = 0;
    while (off < count) {
      const r = libc().sendmmsg(fd, this.at(off), count - off, 0);
      if (r > 0) {
        off += r;
        sent += r;
        continue;
      }
      // The message at `off` failed: count it and go on with the next.
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN || e === ENOBUFS) this.sendDropped++;
      else this.sendErrors++;
      off++;
    }
    return sent;
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    koffi.free(this.ptr);
  }
}
