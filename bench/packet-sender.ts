// Traffic source for bench/packet.ts, run inside the sender pod's namespace. Reads "<rate> <count>"
// lines on stdin, sends <count> 100-byte UDP datagrams to the bench group at <rate> per second
// (batched sendmmsg, paced per millisecond), then prints "done <sent> <dropped> <seconds>".
import { createInterface } from 'node:readline';
import { OutDatagram, UnderlaySocket } from '../pkg/underlay/udp.js';

const [source, group, port] = process.argv.slice(2);
const sock = UnderlaySocket.open({ address: source, port: 0 });
const to = sock.peer(group, Number(port));
const payload = Buffer.alloc(100, 0x5a);
const batch: OutDatagram[] = Array.from({ length: 64 }, () => ({ to, data: payload }));

function run(rate: number, count: number): Promise<{ sent: number; seconds: number }> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    let sent = 0;
    const tick = () => {
      const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      const due = Math.min(count, Math.floor(elapsed * rate));
      while (sent < due) {
        const n = Math.min(batch.length, due - sent);
        sock.send(n === batch.length ? batch : batch.slice(0, n));
        sent += n;
      }
      if (sent < count) setTimeout(tick, 1);
      else resolve({ sent, seconds: Number(process.hrtime.bigint() - start) / 1e9 });
    };
    tick();
  });
}

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  const [rate, count] = line.trim().split(/\s+/).map(Number);
  queue = queue.then(async () => {
    const before = sock.counters().sendDropped;
    const { sent, seconds } = await run(rate, count);
    process.stdout.write(`done ${sent} ${sock.counters().sendDropped - before} ${seconds}\n`);
  });
});
lines.on('close', () => {
  void queue.then(() => sock.dispose());
});
