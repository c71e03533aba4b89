// Thin bindings to the libc syscalls Node.js does not expose (netlink, AF_PACKET, setns).
// Loaded lazily so pure modules that import types from here never touch koffi.
// The constants are in constants.ts, the setsockopt helpers in sockopt.ts.
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY } from './constants.js';

type Fn = (...args: unknown[]) => number;

interface Libc {
  socket: Fn;
  bind: Fn;
  close: Fn;
  setsockopt: Fn;
  getsockopt: Fn;
  sendto: Fn;
  recv: Fn;
  recvfrom: Fn;
  setns: Fn;
  open: Fn;
  poll: Fn;
  if_nametoindex: (name: string) => number;
  /** Batched I/O over message vectors addressed by raw pointer (see pkg/packet/msgvec.ts). */
  recvmmsg: (fd: number, msgvec: number, vlen: number, flags: number, timeout: number) => number;
  sendmmsg: (fd: number, msgvec: number, vlen: number, flags: number) => number;
  getsockname: Fn;
}

let cached: Libc | undefined;

/** The libc functions, loaded on first use. */
export function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load('libc.so.6');
  cached = {
    socket: lib.func('int socket(int, int, int)'),
    bind: lib.func('int bind(int, const void *, uint32_t)'),
    close: lib.func('int close(int)'),
    setsockopt: lib.func('int setsockopt(int, int, int, const void *, uint32_t)'),
    getsockopt: lib.func('int getsockopt(int, int, int, _Out_ void *, _Inout_ uint32_t *)'),
    sendto: lib.func('intptr_t sendto(int, const void *, size_t, int, const void *, uint32_t)'),
    recv: lib.func('intptr_t recv(int, _Out_ void *, size_t, int)'),
    recvfrom: lib.func('intptr_t recvfrom(int, _Out_ void *, size_t, int, _Out_ void *, _Inout_ uint32_t *)'),
    setns: lib.func('int setns(int, int)'),
    open: lib.func('int open(const char *, int)'),
    poll: lib.func('int poll(_Inout_ void *, unsigned long, int)'),
    if_nametoindex: lib.func('unsigned int if_nametoindex(const char *)'),
    recvmmsg: lib.func('int recvmmsg(int, uintptr_t, unsigned int, int, uintptr_t)'),
    sendmmsg: lib.func('int sendmmsg(int, uintptr_t, unsigned int, int)'),
    getsockname: lib.func('int getsockname(int, _Out_ void *, _Inout_ uint32_t *)'),
  } as unknown as Libc;
  return cached;
}

/**
 * sendto(2) on one of koffi's worker threads, for requests the kernel serves slowly inside the call
 * (deleting a link waits for RCU grace periods): the event loop keeps running meanwhile. Resolves with
 * the return value; errno is not available from another thread.
 */
export function sendtoAsync(fd: number, buf: Buffer): Promise<number> {
  const fn = libc().sendto as unknown as { async: (...args: unknown[]) => void };
  return new Promise((resolve, reject) => {
    fn.async(fd, buf, buf.length, 0, null, 0, (err: unknown, ret: unknown) =>
      err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(Number(ret)),
    );
  });
}

/** errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.errno();
}

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, num]) => [num as number, name]),
);

/** A syscall failure carrying errno, with the call's context in the message. */
export class SysError extends Error {
  constructor(
    public readonly call: string,
    public readonly errno: number,
  ) {
    super(`${call}: ${errnoNames.get(errno) ?? 'errno ' + errno}`);
    this.name = 'SysError';
  }
}

/** Throws SysError when a syscall returned a negative value. */
export function check(call: string, ret: number): number {
  if (ret < 0) throw new SysError(call, errno());
  return ret;
}

/**
 * Runs `fn` with this thread in the network namespace at `nsPath`, then switches back.
 * Sockets created inside stay bound to that namespace. `fn` must be synchronous: JS runs on one
 * thread, so nothing else can observe the switch.
 */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  const c = libc();
  const self = check(
    'open /proc/thread-self/ns/net',
    c.open('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC),
  );
  let target = -1;
  try {
    target = check(`open ${nsPath}`, c.open(nsPath, O_RDONLY | O_CLOEXEC));
    check(`setns ${nsPath}`, c.setns(target, CLONE_NEWNET));
    try {
      return fn();
    } finally {
      check('setns back to agent netns', c.setns(self, CLONE_NEWNET));
    }
  } finally {
    if (target >= 0) c.close(target);
    c.close(self);
  }
}
