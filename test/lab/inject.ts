// Raw Ethernet frames, built and sent out of a pod's eth0 as a misbehaving pod would (the hostile tests).
import { buildIPv4Frame } from '../../pkg/frame/build.js';
import { runIn } from '../../pkg/sys/exec.js';

interface Station {
  mac: string;
  ip: string;
}

/** An IPv4 UDP frame from `src` port 40000 to `dst` port 5000 (where the lab's pods listen) carrying `token`. */
export function udpFrame(src: Station, dst: Station, token: string, ttl = 64): Buffer {
  const payload = Buffer.from(token);
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(5000, 2);
  udp.writeUInt16BE(udp.length, 4);
  payload.copy(udp, 8);
  const frame = buildIPv4Frame({
    dstMac: dst.mac,
    srcMac: src.mac,
    src: src.ip,
    dst: dst.ip,
    protocol: 17,
    ttl,
    payload: udp,
  });
  return Buffer.from(frame);
}

const INJECT = `
import binascii, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for line in sys.stdin:
    s.send(binascii.unhexlify(line.strip()))
`;

/** Sends `frames`, in order, out of eth0 in network namespace `ns`. */
export async function injectFrames(ns: string, frames: Uint8Array[]): Promise<void> {
  const input = frames.map((f) => Buffer.from(f).toString('hex')).join('\n') + '\n';
  await runIn(ns, 'python3', ['-c', INJECT], { input });
}
