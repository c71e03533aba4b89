// Acting on a lab as an attacker would: frames as a pod sends them (or injects them raw), raw datagrams from any
// address (a node's own, spoofed), the datagrams the underlay capture saw, and the agents' drop counters.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildIPv4Frame } from '../../pkg/frame/build.js';
import { VNET_HDR_LEN } from '../../pkg/frame/vnet.js';
import type { Lab } from '../../pkg/lab/runner.js';
import { readPcap } from '../../pkg/lab/pcap.js';
import { UNDERLAY_PORT } from '../../pkg/lab/topology.js';
import { formatMac, ipv4MulticastMac, parseIPv4 } from '../../pkg/netaddr/address.js';
import { run, runIn } from '../../pkg/sys/exec.js';
import { waitFor } from '../../pkg/base/async.js';

interface Station {
  mac: string;
  ip: string;
}

/**
 * An IPv4 UDP frame from `src` port 40000 to `dst` port 5000 (where the lab's pods listen) carrying
 * `token`, with 802.1Q tags `vlans` (outermost first).
 */
export function udpFrame(src: Station, dst: Station, token: string, ttl = 64, vlans: number[] = []): Buffer {
  const payload = Buffer.from(token);
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(5000, 2);
  udp.writeUInt16BE(udp.length, 4);
  payload.copy(udp, 8);
  return Buffer.from(
    buildIPv4Frame({
      dstMac: dst.mac,
      srcMac: src.mac,
      src: src.ip,
      dst: dst.ip,
      protocol: 17,
      ttl,
      payload: udp,
      vlans,
    }),
  );
}

/** A UDP datagram to `group`:5000 from `src`, as a pod would send it (TTL 1), carrying `token`. */
export function groupFrame(group: string, src: Station, token: string): Buffer {
  return udpFrame(src, { mac: formatMac(ipv4MulticastMac(parseIPv4(group)!)), ip: group }, token, 1);
}

const INJECT = `
import binascii, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for line in sys.stdin:
    s.send(binascii.unhexlify(line.strip()))
`;

/** Sends raw Ethernet `frames`, in order, out of eth0 in namespace `ns`, as a misbehaving pod would. */
export async function injectFrames(ns: string, frames: Uint8Array[]): Promise<void> {
  const input = frames.map((f) => Buffer.from(f).toString('hex')).join('\n') + '\n';
  await runIn(ns, 'python3', ['-c', INJECT], { input });
}

export function withVnet(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(VNET_HDR_LEN + frame.length);
  out.set(frame, VNET_HDR_LEN);
  return out;
}

// A raw socket, so the datagrams can come from a node's own address and agent port without
// stealing the agent's socket: the kernel adds the IP header, we write the UDP header (checksum 0).
const SENDER = `
import binascii, socket, struct, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.bind((src, 0))
for line in sys.stdin:
    d = binascii.unhexlify(line.strip())
    s.sendto(struct.pack("!HHHH", port, port, 8 + len(d), 0) + d, (dst, 0))
`;

/** Sends raw datagrams from (ns, src:port) to dst:port; castnet's data port unless `port` says otherwise. */
export async function sendDatagrams(
  ns: string,
  src: string,
  dst: string,
  datagrams: Uint8Array[],
  port = UNDERLAY_PORT,
): Promise<void> {
  const input = datagrams.map((d) => Buffer.from(d).toString('hex')).join('\n') + '\n';
  await runIn(ns, 'python3', ['-c', SENDER, src, dst, String(port)], { input });
}

/** A host on the lab's underlay that is not a node (yet): namespace `<lab>-<suffix>` with `address`. */
export async function addUnderlayHost(lab: Lab, suffix: string, address: string): Promise<string> {
  const topo = lab.topology;
  const ns = `${topo.id}-${suffix}`;
  const veth = `${suffix}0`;
  await run('ip', ['netns', 'add', ns]);
  await run('ip', [
    '-n',
    ns,
    'link',
    'add',
    veth,
    'type',
    'veth',
    'peer',
    'name',
    suffix,
    'netns',
    topo.underlayNs,
  ]);
  await run('ip', ['-n', topo.underlayNs, 'link', 'set', suffix, 'master', 'ul', 'up']);
  await run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', veth]);
  await run('ip', ['-n', ns, 'link', 'set', veth, 'up']);
  return ns;
}

/** The UDP payloads of the datagrams the underlay capture saw that contain `token`. */
export function capturedDatagrams(lab: Lab, token: string): Buffer[] {
  const needle = Buffer.from(token);
  return readPcap(readFileSync(join(lab.topology.dir, 'underlay.pcap')))
    .map((p) => p.data)
    .filter((d) => d.includes(needle))
    .map((d) => d.subarray(14 + (d[14]! & 0x0f) * 4 + 8)); // Ethernet, IPv4 (IHL), UDP
}

export async function drops(lab: Lab, node: number): Promise<Record<string, number>> {
  const s = (await lab.agentStats(node)) as { dataplane: { drops: Record<string, number> } };
  return s.dataplane.drops;
}

export const dropTotal = (d: Record<string, number>): number => Object.values(d).reduce((n, v) => n + v, 0);

/** Waits until `pod`'s capture holds `token` (at least once) and returns how often it does. */
export async function arrived(lab: Lab, pod: string, token: string): Promise<number> {
  return waitFor(() => lab.receivedBy(pod, token) || undefined, { what: `${token} at ${pod}` });
}
