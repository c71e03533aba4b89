// setsockopt(2) helpers shared by the netlink, AF_PACKET and underlay UDP sockets. Errors name the
// option, as SysError does for every call.
import {
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_RCVTIMEO,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOL_SOCKET,
} from './constants.js';
import { check, libc } from './libc.js';

function int32(value: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  return v;
}

/** Sets an int option; throws SysError naming `what` when the kernel refuses. */
export function setIntOption(fd: number, level: number, opt: number, value: number, what: string): void {
  check(`setsockopt(${what})`, libc().setsockopt(fd, level, opt, int32(value), 4));
}

/** Sets an int option the caller can do without (a feature of newer kernels); returns whether it took. */
export function trySetIntOption(fd: number, level: number, opt: number, value: number): boolean {
  return libc().setsockopt(fd, level, opt, int32(value), 4) >= 0;
}

/**
 * Sets a socket's receive or send buffer to `bytes`: with the FORCE option, which passes the
 * sysctl cap (net.core.rmem_max/wmem_max) with CAP_NET_ADMIN, else as far as the cap allows.
 */
export function setSocketBuffer(fd: number, direction: 'rcv' | 'snd', bytes: number): void {
  const [force, plain, name] =
    direction === 'rcv' ? [SO_RCVBUFFORCE, SO_RCVBUF, 'SO_RCVBUF'] : [SO_SNDBUFFORCE, SO_SNDBUF, 'SO_SNDBUF'];
  if (trySetIntOption(fd, SOL_SOCKET, force, bytes)) return;
  setIntOption(fd, SOL_SOCKET, plain, bytes, name);
}

/** Makes blocking receives on the socket give up after `seconds` (SO_RCVTIMEO). */
export function setReceiveTimeout(fd: number, seconds: number): void {
  const tv = Buffer.alloc(16); // struct timeval: tv_sec, tv_usec (64-bit each)
  tv.writeBigInt64LE(BigInt(seconds), 0);
  check('setsockopt(SO_RCVTIMEO)', libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16));
}
