// Linux syscall constants castnet uses, in one place: address families, socket types and levels,
// socket options, errno values. From the uapi headers (socket.h, in.h, in6.h, if_packet.h,
// if_ether.h, netlink.h, fcntl.h, sched.h) for x86_64/aarch64, where they agree.
import { constants as osConstants } from 'node:os';

// errno: Node's own table, so the values are the platform's.
export const { EINTR, EAGAIN, ENOENT, ESRCH, EEXIST, ENODEV, EADDRNOTAVAIL, ENOBUFS } = osConstants.errno;

// Address families (socket.h).
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;

// Socket types and flags.
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

// Option levels.
export const SOL_SOCKET = 1;
export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const SOL_PACKET = 263;
export const SOL_NETLINK = 270;

// SOL_SOCKET options.
export const SO_REUSEADDR = 2;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
export const SO_ATTACH_FILTER = 26;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;

// IPPROTO_IP / IPPROTO_IPV6 options.
export const IP_ADD_MEMBERSHIP = 35;
export const IPV6_V6ONLY = 26;

// SOL_PACKET options (if_packet.h).
export const PACKET_STATISTICS = 6;
export const PACKET_AUXDATA = 8;
export const PACKET_VNET_HDR = 15;
export const PACKET_IGNORE_OUTGOING = 23;
/** Every protocol (if_ether.h), for binding an AF_PACKET socket. */
export const ETH_P_ALL = 0x0003;

// send/recv flags.
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;

// open(2) and setns(2).
export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
