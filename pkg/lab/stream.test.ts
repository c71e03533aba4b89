import { readStream, stampStream, StreamTally } from './stream.js';

describe('stream payloads', () => {
  it('carry the run and sequence number', () => {
    const p = Buffer.alloc(100);
    stampStream(p, 7, 123456, 99n);
    expect(readStream(p)).toEqual({ run: 7, seq: 123456 });
    expect(readStream(Buffer.alloc(15))).toBeUndefined();
  });

  it('refuse a payload too short for the header', () => {
    expect(() => stampStream(Buffer.alloc(8), 1, 1, 0n)).toThrow('8 bytes, need at least 16');
  });
});

describe('StreamTally', () => {
  it('counts a smooth, complete stream as such', () => {
    const t = new StreamTally(100);
    for (let i = 0; i < 100; i++) t.record(i, i * 50_000); // 20,000/s
    expect(t.summary(100)).toEqual({
      sent: 100,
      received: 100,
      lost: 0,
      lossRatio: 0,
      duplicates: 0,
      reordered: 0,
      unexpected: 0,
      gapP99Us: 50,
      gapMaxUs: 50,
      maxPerMs: 20,
    });
  });

  it('finds losses, duplicates, reordering and strangers', () => {
    const t = new StreamTally(10);
    for (const seq of [0, 1, 3, 2, 3, 5, 12]) t.record(seq, 0);
    const s = t.summary(10);
    expect(s).toMatchObject({
      received: 5,
      lost: 5,
      lossRatio: 0.5,
      duplicates: 1,
      reordered: 1,
      unexpected: 1,
    });
  });

  it('reports bursts: datagrams read together after a pause', () => {
    const t = new StreamTally(40);
    // 20 at once, a 2 ms pause, 20 at once: the same rate as a smooth stream, delivered in bursts.
    for (let i = 0; i < 20; i++) t.record(i, 0);
    for (let i = 20; i < 40; i++) t.record(i, 2_000_000);
    const s = t.summary(40);
    expect(s.maxPerMs).toBe(20);
    expect(s.gapMaxUs).toBe(2000);
  });
});
