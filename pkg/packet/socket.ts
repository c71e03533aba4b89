// AF_PACKET sockets for one interface: capture of multicast/broadcast frames that arrive from the
// endpoint, and injection towards it. Every frame read or written starts with a virtio_net_hdr.
import koffi from 'koffi';
import {
  AF_PACKET,
  ETH_P_ALL,
  PACKET_AUXDATA,
  PACKET_IGNORE_OUTGOING,
  PACKET_STATISTICS,
  PACKET_VNET_HDR,
  SO_ATTACH_FILTER,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_PACKET,
  SOL_SOCKET,
} from '../sys/constants.js';
import { SysError, check, errno, libc } from '../sys/libc.js';
import { setIntOption, setSocketBuffer } from '../sys/sockopt.js';
import { GROUP_BIT_FILTER, encodeFilterProgram } from './bpf.js';

/** Default bytes the kernel queues per capture socket before it drops (and counts) frames. */
export const DEFAULT_CAPTURE_RCVBUF = 16 << 20;

function sockaddrLL(ifindex: number, protocol: number): Buffer {
  const sa = Buffer.alloc(20);
  sa.writeUInt16LE(AF_PACKET, 0);
  sa.writeUInt16BE(protocol, 2);
  sa.writeInt32LE(ifindex, 4);
  return sa;
}

/**
 * Opens a non-blocking AF_PACKET socket on `ifindex` that receives the frames arriving on the
 * interface whose destination MAC has the group bit set, never the ones sent out of it (ours
 * included), and injects frames into it. `rcvbuf` bounds what the kernel queues while we do not read.
 */
export function openCaptureSocket(ifindex: number, rcvbuf = DEFAULT_CAPTURE_RCVBUF): number {
  const c = libc();
  // Protocol 0 receives nothing until bind, so no frame slips in before the filter is attached.
  const fd = check('socket(AF_PACKET)', c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    setIntOption(fd, SOL_PACKET, PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
    const prog = encodeFilterProgram(GROUP_BIT_FILTER);
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(GROUP_BIT_FILTER.length, 0);
    fprog.writeBigUInt64LE(koffi.address(prog), 8);
    check('setsockopt(SO_ATTACH_FILTER)', c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16));
    setIntOption(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, 'PACKET_IGNORE_OUTGOING');
    // VLAN tags the kernel moved out of the frame come back as a control message (see vlan.ts).
    setIntOption(fd, SOL_PACKET, PACKET_AUXDATA, 1, 'PACKET_AUXDATA');
    setSocketBuffer(fd, 'rcv', rcvbuf);
    const sa = sockaddrLL(ifindex, ETH_P_ALL);
    check(`bind(AF_PACKET, ifindex ${ifindex})`, c.bind(fd, sa, sa.length));
    return fd;
  } catch (err) {
    c.close(fd);
    throw err;
  }
}

export interface PacketStats {
  /** Frames that passed the filter since the last read. */
  packets: number;
  /** Of those, frames the kernel dropped because the socket's queue was full. */
  drops: number;
}

/** Reads and resets the kernel's per-socket counters. */
export function readPacketStats(fd: number): PacketStats {
  const out = Buffer.alloc(8);
  const len = new Uint32Array([8]);
  const ret = libc().getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, out, len);
  if (ret < 0) throw new SysError('getsockopt(PACKET_STATISTICS)', errno());
  return { packets: out.readUInt32LE(0), drops: out.readUInt32LE(4) };
}
