import { countContaining, readPcap } from './pcap.js';

function pcap(packets: Buffer[], littleEndian = true): Buffer {
  const header = Buffer.alloc(24);
  const w32 = (b: Buffer, v: number, off: number) =>
    littleEndian ? b.writeUInt32LE(v, off) : b.writeUInt32BE(v, off);
  w32(header, 0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  w32(header, 65535, 16);
  w32(header, 1, 20);
  const recs = packets.map((p, i) => {
    const r = Buffer.alloc(16);
    w32(r, 100 + i, 0);
    w32(r, 5, 4);
    w32(r, p.length, 8);
    w32(r, p.length, 12);
    return Buffer.concat([r, p]);
  });
  return Buffer.concat([header, ...recs]);
}

describe('pcap reader', () => {
  it('reads records in both byte orders and counts tokens', () => {
    for (const le of [true, false]) {
      const file = pcap([Buffer.from('xx tok-1 yy'), Buffer.from('tok-2'), Buffer.from('tok-1')], le);
      const pkts = readPcap(file);
      expect(pkts).toHaveLength(3);
      expect(pkts[1]!.tsMicros).toBe(101e6 + 5);
      expect(countContaining(pkts, 'tok-1')).toBe(2);
      expect(countContaining(pkts, 'tok-3')).toBe(0);
    }
  });

  it('ignores a partial trailing record of a file still being written', () => {
    const file = pcap([Buffer.from('complete'), Buffer.from('partial-record')]);
    expect(readPcap(file.subarray(0, file.length - 3)).map((p) => p.data.toString())).toEqual(['complete']);
  });

  it('refuses a file that is not pcap', () => {
    expect(() => readPcap(Buffer.alloc(40, 7))).toThrow(/not a pcap file/);
  });
});
