// A sequenced multicast stream, run inside a pod's network namespace (nsenter -t <pid> -n node ...):
//
//   stream send <source> <group> <port> <rate>      sends datagrams [seq u32][spare] at <rate>/s from
//                                                   <source> until stdin closes; prints {"sent": N}
//   stream recv <address> <group> <port>            joins <group> on <address> (a real IGMP join from
//                                                   the pod's kernel) and reads until stdin closes;
//                                                   prints {"received", "duplicates", "firstSeq",
//                                                   "lastSeq", "gaps": [[fromSeq, toSeq, ms], ...]}
//
// Loss is counted by sequence number, so a receiver knows exactly which messages it missed and for how
// long (a gap's ms is the time between the datagrams on either side of it).
import dgram from 'node:dgram';

const PAYLOAD = 64;

function send(source: string, group: string, port: number, rate: number): void {
  const sock = dgram.createSocket('udp4');
  sock.bind(0, source, () => {
    sock.setMulticastInterface(source);
    sock.setMulticastTTL(4);
    sock.setMulticastLoopback(false);
    const start = process.hrtime.bigint();
    let seq = 0;
    let stopped = false;
    const tick = (): void => {
      if (stopped) return;
      const due = Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * rate);
      while (seq < due) {
        const buf = Buffer.alloc(PAYLOAD);
        buf.writeUInt32BE(seq++, 0);
        sock.send(buf, port, group);
      }
      setTimeout(tick, 1);
    };
    tick();
    process.stdin.resume();
    process.stdin.on('end', () => {
      stopped = true;
      // Let queued sends leave before reporting.
      setTimeout(() => {
        process.stdout.write(JSON.stringify({ sent: seq }) + '\n');
        sock.close();
      }, 200);
    });
  });
}

function recv(address: string, group: string, port: number): void {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const seen = new Set<number>();
  let duplicates = 0;
  let lastSeq = -1;
  let lastAt = 0;
  let firstSeq = -1;
  let joinedAt = 0;
  const gaps: [number, number, number][] = [];
  sock.on('message', (msg) => {
    if (msg.length < 4) return;
    const seq = msg.readUInt32BE(0);
    const now = Number(process.hrtime.bigint()) / 1e6;
    if (seen.has(seq)) {
      duplicates++;
      return;
    }
    seen.add(seq);
    if (firstSeq < 0) {
      firstSeq = seq;
      process.stdout.write(`first ${seq} ${(now - joinedAt).toFixed(1)}\n`);
    }
    if (lastSeq >= 0 && seq > lastSeq + 1) gaps.push([lastSeq + 1, seq - 1, Math.round(now - lastAt)]);
    if (seq > lastSeq) {
      lastSeq = seq;
      lastAt = now;
    }
  });
  sock.bind(port, group, () => {
    joinedAt = Number(process.hrtime.bigint()) / 1e6;
    sock.addMembership(group, address);
    process.stdout.write('ready\n');
  });
  process.stdin.resume();
  process.stdin.on('end', () => {
    process.stdout.write(JSON.stringify({ received: seen.size, duplicates, firstSeq, lastSeq, gaps }) + '\n');
    sock.close();
  });
}

const [role, ...a] = process.argv.slice(2);
if (role === 'send' && a.length === 4) send(a[0]!, a[1]!, Number(a[2]), Number(a[3]));
else if (role === 'recv' && a.length === 3) recv(a[0]!, a[1]!, Number(a[2]));
else {
  console.error('usage: stream send <source> <group> <port> <rate> | stream recv <address> <group> <port>');
  process.exit(2);
}
