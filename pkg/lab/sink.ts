// The lab's receiving application: in every pod, one UDP socket per port and address family, bound
// to the wildcard address beside the joined applications' own sockets (SO_REUSEADDR). It reads what
// the pod's kernel delivers (after its IP and UDP checks, so a frame with a bad checksum or a broken
// virtio-net header is not counted) and counts each lab message's copies, and damaged copies. A VM
// pod's guest reads its own (traffic.ts); its lines give each copy's token and payload digest.
import type { Disposable } from '../base/lifecycle.js';
import { UnderlaySocket } from '../underlay/udp.js';
import { tokenOf } from './verdict.js';

interface Tally {
  copies: number;
  damaged: number;
}

export class LabSinks implements Disposable {
  private readonly sockets = new Map<string, UnderlaySocket>();
  /** pod -> token -> tally */
  private readonly tallies = new Map<string, Map<string, Tally>>();
  /** token -> the exact payload sent, to tell intact copies from damaged ones. */
  private readonly sent = new Map<string, Buffer>();

  /** Registers a payload about to be sent, so copies of it can be checked byte for byte. */
  expect(token: string, payload: Buffer): void {
    this.sent.set(token, payload);
  }

  /** Listens in pod `pod` (namespace path `netns`) on `port`, for each of the pod's families. */
  open(pod: string, netns: string, families: (4 | 6)[], port: number): void {
    for (const family of families) {
      const key = `${pod}/${family}/${port}`;
      if (this.sockets.has(key)) continue;
      const sock = UnderlaySocket.open({
        address: family === 4 ? '0.0.0.0' : '::',
        port,
        netns,
        batchSize: 8,
        reuseAddress: true,
      });
      sock.onDatagrams((batch) => {
        for (const d of batch) this.record(pod, d.data);
      });
      this.sockets.set(key, sock);
    }
  }

  private record(pod: string, payload: Buffer): void {
    const token = tokenOf(payload);
    const sent = this.sent.get(token);
    this.count(pod, token, !!sent && !sent.equals(payload));
  }

  /**
   * A copy a guest's application read, known by its token and its payload's FNV-1a 64 digest
   * (hex), as castnet-guest prints them.
   */
  recordDigest(pod: string, token: string, digest: string): void {
    const sent = this.sent.get(token);
    this.count(pod, token, !!sent && fnv1a64(sent) !== digest);
  }

  private count(pod: string, token: string, damaged: boolean): void {
    let byToken = this.tallies.get(pod);
    if (!byToken) this.tallies.set(pod, (byToken = new Map()));
    let t = byToken.get(token);
    if (!t) byToken.set(token, (t = { copies: 0, damaged: 0 }));
    t.copies++;
    if (damaged) t.damaged++;
  }

  /** Copies of the message `token` that pod's application read so far (damaged ones included). */
  copies(pod: string, token: string): number {
    return this.tallies.get(pod)?.get(token)?.copies ?? 0;
  }

  damaged(pod: string, token: string): number {
    return this.tallies.get(pod)?.get(token)?.damaged ?? 0;
  }

  /** Stops listening in a pod (before its namespace goes). */
  closePod(pod: string): void {
    for (const [key, sock] of this.sockets)
      if (key.startsWith(`${pod}/`)) {
        sock.dispose();
        this.sockets.delete(key);
      }
  }

  dispose(): void {
    for (const sock of this.sockets.values()) sock.dispose();
    this.sockets.clear();
  }
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = (1n << 64n) - 1n;

/** FNV-1a 64 of `data`, 16 hex digits: castnet-guest's payload digest. */
export function fnv1a64(data: Uint8Array): string {
  let h = FNV_OFFSET;
  for (const b of data) h = ((h ^ BigInt(b)) * FNV_PRIME) & U64;
  return h.toString(16).padStart(16, '0');
}
