// The alternative threading that bench/packet.ts measures against CaptureSet's: a worker thread
// that owns a capture socket, blocks in poll(2), drains it with recvmmsg and posts each batch to the
// main thread as one transferred ArrayBuffer. Bench-only: it exists to be measured.
// Like the kernel queue, what it holds is bounded: with MAX_IN_FLIGHT batches posted and not yet
// handled by the main thread, it stops reading and the socket queue (then the kernel) takes over.
import { parentPort, workerData } from 'node:worker_threads';
import { MAX_FRAME } from '../pkg/packet/capture.js';
import { MsgVec } from '../pkg/packet/msgvec.js';
import { MSG_DONTWAIT } from '../pkg/sys/constants.js';
import { libc } from '../pkg/sys/libc.js';

const { fd, control } = workerData as { fd: number; control: SharedArrayBuffer };
/** [0]: stop flag; [1]: batches posted and not yet handled (the main thread decrements it). */
const shared = new Int32Array(control);
const MAX_IN_FLIGHT = 64;
const rx = new MsgVec(64, MAX_FRAME);
const pfd = Buffer.alloc(8);
pfd.writeInt32LE(fd, 0);
pfd.writeInt16LE(1, 4); // POLLIN

while (Atomics.load(shared, 0) === 0) {
  const inFlight = Atomics.load(shared, 1);
  if (inFlight >= MAX_IN_FLIGHT) {
    Atomics.wait(shared, 1, inFlight, 10);
    continue;
  }
  if (libc().poll(pfd, 1, 100) <= 0) continue;
  for (;;) {
    const n = libc().recvmmsg(fd, rx.base, rx.capacity, MSG_DONTWAIT, 0);
    if (n <= 0) break;
    const lens = new Uint32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) total += lens[i] = rx.msgLen(i);
    const buf = new Uint8Array(total);
    for (let i = 0, off = 0; i < n; off += lens[i++]) buf.set(rx.slot(i).subarray(0, lens[i]), off);
    Atomics.add(shared, 1, 1);
    parentPort!.postMessage({ buf, lens }, [buf.buffer, lens.buffer]);
    if (n < rx.capacity || Atomics.load(shared, 1) >= MAX_IN_FLIGHT) break;
  }
}
rx.free();
