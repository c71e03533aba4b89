// Reads classic pcap files (as tcpdump -w writes them) so the lab can count what was delivered
// where. A file still being written may end in a partial record; it is ignored.

export interface PcapPacket {
  tsMicros: number;
  data: Buffer;
}

export function readPcap(buf: Buffer): PcapPacket[] {
  if (buf.length < 24) return [];
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  let nanos = false;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`not a pcap file (magic 0x${magic.toString(16)})`);
  if (magic === 0xa1b23c4d || magic === 0x4d3cb2a1) nanos = true;
  const u32 = (off: number) => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const out: PcapPacket[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const caplen = u32(off + 8);
    if (off + 16 + caplen > buf.length) break;
    out.push({
      tsMicros: sec * 1e6 + (nanos ? Math.floor(frac / 1000) : frac),
      data: buf.subarray(off + 16, off + 16 + caplen),
    });
    off += 16 + caplen;
  }
  return out;
}

/** How many packets contain `token` (payload markers make each lab message identifiable). */
export function countContaining(packets: PcapPacket[], token: string): number {
  const needle = Buffer.from(token);
  return packets.filter((p) => p.data.includes(needle)).length;
}
