// Which UDP path for the underlay: node:dgram or UnderlaySocket (recvmmsg/sendmmsg via koffi)?
// And what does a readiness wakeup cost: koffi's `.async` call versus a libuv poll handle?
// Runs inside a throwaway namespace (mk/packet.mk creates it), on its loopback only.
// Roles: no argument = the measuring parent; `sink` and `blast <rate>` = helper children.
import { fork, ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { OutDatagram, UnderlaySocket } from '../pkg/underlay/udp.js';
import { sleep } from '../pkg/base/async.js';

const SINK_PORT = 47001;
const RX_PORT = 47002;
const PAYLOAD = Buffer.alloc(100, 0x33);
const SECONDS = 1;

function cpuUs(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return u.user + u.system;
}

function child(args: string[]): Promise<ChildProcess> {
  const c = fork(__filename, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve) => c.once('message', () => resolve(c)));
}

/** Paced sender used by both the blast child and the send measurements. */
async function pace(rate: number, seconds: number, sendBurst: (n: number) => void): Promise<number> {
  const start = process.hrtime.bigint();
  const total = Math.round(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * rate));
    if (due > sent) {
      sendBurst(due - sent);
      sent = due;
    }
    await sleep(1);
  }
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function roleSink(): Promise<void> {
  const s = UnderlaySocket.open({ address: '127.0.0.1', port: SINK_PORT });
  s.onDatagrams(() => {});
  process.send!('ready');
}

async function roleBlast(rate: number): Promise<void> {
  const s = UnderlaySocket.open({ address: '127.0.0.1', port: 0 });
  const to = s.peer('127.0.0.1', RX_PORT);
  const batch: OutDatagram[] = Array.from({ length: 64 }, () => ({ to, data: PAYLOAD }));
  process.send!('ready');
  await new Promise((r) => process.once('message', r));
  await pace(rate, SECONDS, (n) => {
    for (let left = n; left > 0; left -= 64) s.send(left >= 64 ? batch : batch.slice(0, left));
  });
  process.send!('done');
  s.dispose();
}

interface Measure {
  method: string;
  rate: number;
  /** Receive: fraction of the offered datagrams that arrived. */
  delivered?: number;
  /** Send: fraction of the asked rate the sender achieved. */
  achieved_fraction?: number;
  cpu_us_per_datagram: number;
}

/** Receive at `rate` with one method; CPU of this process per datagram received. */
async function measureReceive(method: 'mmsg' | 'dgram', rate: number): Promise<Measure> {
  let got = 0;
  let close: () => void;
  if (method === 'mmsg') {
    const s = UnderlaySocket.open({ address: '127.0.0.1', port: RX_PORT });
    s.onDatagrams((b) => (got += b.length));
    close = () => s.dispose();
  } else {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    s.on('message', () => got++);
    await new Promise<void>((r) => s.bind(RX_PORT, '127.0.0.1', r));
    s.setRecvBufferSize(4 << 20);
    close = () => s.close();
  }
  const blaster = await child(['blast', String(rate)]);
  const cpu0 = process.cpuUsage();
  blaster.send('go');
  await new Promise((r) => blaster.once('message', r));
  await sleep(100);
  const cpu = cpuUs(cpu0);
  close();
  blaster.kill();
  return {
    method,
    rate,
    delivered: round(got / (rate * SECONDS)),
    cpu_us_per_datagram: round(cpu / Math.max(1, got)),
  };
}

/** Send at `rate` with one method; CPU of this process per datagram sent. */
async function measureSend(method: 'mmsg' | 'dgram', rate: number): Promise<Measure> {
  let burst: (n: number) => void;
  let close: () => void;
  if (method === 'mmsg') {
    const s = UnderlaySocket.open({ address: '127.0.0.1', port: 0 });
    const to = s.peer('127.0.0.1', SINK_PORT);
    const batch: OutDatagram[] = Array.from({ length: 64 }, () => ({ to, data: PAYLOAD }));
    burst = (n) => {
      for (let left = n; left > 0; left -= 64) s.send(left >= 64 ? batch : batch.slice(0, left));
    };
    close = () => s.dispose();
  } else {
    const s = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    burst = (n) => {
      for (let i = 0; i < n; i++) s.send(PAYLOAD, SINK_PORT, '127.0.0.1');
    };
    close = () => s.close();
  }
  const cpu0 = process.cpuUsage();
  const seconds = await pace(rate, SECONDS, burst);
  await sleep(50);
  const cpu = cpuUs(cpu0);
  close();
  return {
    method,
    rate,
    cpu_us_per_datagram: round(cpu / (rate * SECONDS)),
    achieved_fraction: round((rate * SECONDS) / seconds / rate),
  };
}

/** Cost of one synchronous koffi call, one koffi `.async` call, each awaited in turn. */
async function measureCalls(): Promise<{
  sync_call_us: number;
  async_call_us: number;
  async_cpu_us: number;
}> {
  const getpid = koffi.load('libc.so.6').func('int getpid()');
  const n = 200000;
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) getpid();
  const sync = Number(process.hrtime.bigint() - t) / 1e3 / n;
  const m = 5000;
  const cpu0 = process.cpuUsage();
  t = process.hrtime.bigint();
  for (let i = 0; i < m; i++) await new Promise((r) => getpid.async(r));
  const asyncUs = Number(process.hrtime.bigint() - t) / 1e3 / m;
  return { sync_call_us: round(sync), async_call_us: round(asyncUs), async_cpu_us: round(cpuUs(cpu0) / m) };
}

/**
 * Cost of one readiness wakeup on the main thread, two ways, by ping-pong (each hop wakes the
 * other side): (a) a libuv poll handle on a socket (what CaptureSet and UnderlaySocket use), one
 * datagram per hop; (b) a worker thread posting a transferred 6.4 KB batch to the main thread.
 */
async function measureWakeups(): Promise<Record<string, number>> {
  const hops = 20000;
  const a = UnderlaySocket.open({ address: '127.0.0.1', port: 0 });
  const b = UnderlaySocket.open({ address: '127.0.0.1', port: 0 });
  const toB = [{ to: a.peer('127.0.0.1', b.port), data: PAYLOAD }];
  const toA = [{ to: b.peer('127.0.0.1', a.port), data: PAYLOAD }];
  let t = process.hrtime.bigint();
  let cpu0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    let n = 0;
    b.onDatagrams(() => b.send(toA));
    a.onDatagrams(() => (++n * 2 >= hops ? resolve() : a.send(toB)));
    a.send(toB);
  });
  const uv = Number(process.hrtime.bigint() - t) / 1e3 / hops;
  const uvCpu = cpuUs(cpu0) / hops;
  a.dispose();
  b.dispose();

  const { Worker } = await import('node:worker_threads');
  const w = new Worker(
    `const { parentPort } = require('node:worker_threads');
     parentPort.on('message', () => { const ab = new ArrayBuffer(6400); parentPort.postMessage(ab, [ab]); });`,
    { eval: true },
  );
  t = process.hrtime.bigint();
  cpu0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    let n = 0;
    w.on('message', () => (++n * 2 >= hops ? resolve() : w.postMessage(0)));
    w.postMessage(0);
  });
  const worker = Number(process.hrtime.bigint() - t) / 1e3 / hops;
  const workerCpu = cpuUs(cpu0) / hops;
  await w.terminate();
  return {
    uv_poll_hop_us: round(uv),
    uv_poll_hop_cpu_us: round(uvCpu),
    worker_post_hop_us: round(worker),
    worker_post_hop_cpu_us: round(workerCpu),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

async function main(): Promise<void> {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const sink = await child(['sink']);
  const send: Measure[] = [];
  const receive: Measure[] = [];
  for (const rate of [20000, 100000]) {
    for (const method of ['dgram', 'mmsg'] as const) {
      send.push(await measureSend(method, rate));
      receive.push(await measureReceive(method, rate));
      await sleep(100);
    }
  }
  sink.kill();
  const calls = await measureCalls();
  const wakeups = await measureWakeups();
  const out = {
    bench: 'packet-underlay',
    date: new Date().toISOString(),
    payload_bytes: 100,
    send,
    receive,
    koffi: calls,
    wakeups,
  };
  console.log(JSON.stringify(out, null, 2));
  const dir = process.env.BENCH_RESULTS ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'packet-underlay.json'), JSON.stringify(out, null, 2) + '\n');
}

const [role, arg] = process.argv.slice(2);
(role === 'sink' ? roleSink() : role === 'blast' ? roleBlast(Number(arg)) : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});
