// The alternative threading that bench/packet.ts measures against CaptureSet's: a worker thread
// that owns a capture socket, blocks in poll(2), drains it with recvmmsg and posts each batch to the
// main thread as one transferred ArrayBuffer. Bench-only: it exists to be measured.
import { parentPort, workerData } from 'node:worker_threads';
import { MAX_FRAME } from '../pkg/packet/capture';
import { MSG_DONTWAIT, MsgVec } from '../pkg/packet/msgvec';
import { libc } from '../pkg/sys/libc';

const { fd, stop } = workerData as { fd: number; stop: SharedArrayBuffer };
const stopFlag = new Int32Array(stop);
const rx = new MsgVec(64, MAX_FRAME);
const pfd = Buffer.alloc(8);
pfd.writeInt32LE(fd, 0);
pfd.writeInt16LE(1, 4); // POLLIN

while (Atomics.load(stopFlag, 0) === 0) {
  if (libc().poll(pfd, 1, 100) <= 0) continue;
  for (;;) {
    const n = libc().recvmmsg(fd, rx.base, rx.capacity, MSG_DONTWAIT, 0);
    if (n <= 0) break;
    const lens = new Uint32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) total += lens[i] = rx.msgLen(i);
    const buf = new Uint8Array(total);
    for (let i = 0, off = 0; i < n; off += lens[i++]) buf.set(rx.slot(i).subarray(0, lens[i]), off);
    parentPort!.postMessage({ buf, lens }, [buf.buffer, lens.buffer]);
    if (n < rx.capacity) break;
  }
}
rx.free();
